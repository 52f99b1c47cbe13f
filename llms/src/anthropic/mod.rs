//! Anthropic: [`AnthropicChatModel`] speaks the Messages API (`POST {base}/v1/messages`):
//! unary and SSE streaming, tools, images, extended thinking, prompt caching and structured
//! outputs.
//!
//! Configure it with a builder or from the environment ([`API_KEY_ENV`], [`BASE_URL_ENV`],
//! [`MODEL_ENV`]). The key is sent as the sensitive `x-api-key` header with
//! `anthropic-version: 2023-06-01`, and is removed from every error message, even when a
//! server echoes it back.
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Message, PromptCache, ReasoningOptions};
//! use catena_llms::anthropic::AnthropicChatModel;
//!
//! # async fn run() -> catena_core::Result<()> {
//! // Reads ANTHROPIC_API_KEY (and the optional ANTHROPIC_BASE_URL, ANTHROPIC_MODEL).
//! let model = AnthropicChatModel::from_env()?;
//! let request = ChatRequest::new(vec![
//!     Message::system("You are terse. <a long, stable prompt>"),
//!     Message::user("What is the capital of France?"),
//! ])
//! .with_prompt_cache(PromptCache::automatic())
//! .with_reasoning(ReasoningOptions::budget(2048));
//! let answer = model.generate(request).await?;
//! println!("{}", answer.text());
//! // Keep `answer.message` (with its signed thinking blocks) in the history for the next turn.
//! # Ok(()) }
//! ```
//!
//! Mapping notes:
//! - `max_tokens` is required by Anthropic: [`ChatRequest::max_tokens`](catena_core::ChatRequest::max_tokens), else the builder's
//!   [`max_tokens`](AnthropicChatModelBuilder::max_tokens) (default
//!   [`DEFAULT_MAX_TOKENS`]).
//! - System messages become the top-level `system` array of text blocks. Tool results
//!   become `tool_result` blocks of a user message; consecutive results (and a user message
//!   right after them) share one user message, as Anthropic's turn alternation requires.
//! - Reasoning: [`ReasoningOptions`](catena_core::ReasoningOptions) becomes
//!   `thinking: {type: enabled, budget_tokens}`; an effort alone maps to a budget (minimal
//!   and low 1024, medium 4096, high 16384). When the request sets no `max_tokens`, the
//!   limit is raised to leave the default room for the answer after the budget. Thinking
//!   and redacted-thinking blocks come back in
//!   [`Message::reasoning`](catena_core::Message::reasoning) and are sent back first in the
//!   assistant turn, signatures untouched; reasoning without a signature (another
//!   provider's) is not sent.
//! - Structured output: [`ResponseFormat::JsonSchema`](catena_core::ResponseFormat) uses
//!   Anthropic's structured outputs (`output_config: {format: {type: json_schema, schema}}`,
//!   constrained decoding); strict schemas get `"additionalProperties": false` on every
//!   object that does not say otherwise, as Anthropic requires. `JsonObject` has no
//!   Anthropic counterpart and is rejected with [`InvalidInput`](catena_core::Error).
//! - Prompt caching: `cache_control: {type: ephemeral}` (with `ttl: "1h"` when
//!   [`PromptCache::ttl_secs`](catena_core::PromptCache) is an hour or more) on the last
//!   block of every message marked with
//!   [`with_cache_breakpoint`](catena_core::Message::with_cache_breakpoint); with
//!   `automatic`, also on the last tool, the last system block and the last message. At most
//!   [`MAX_CACHE_BREAKPOINTS`] are sent: the earliest extras are dropped.
//! - Usage: Anthropic's `input_tokens` excludes the cached prefix. Catena's
//!   [`Usage::input_tokens`](catena_core::Usage) is the whole prompt
//!   (`input_tokens + cache_creation_input_tokens + cache_read_input_tokens`), with reads in
//!   `cached_input_tokens` and writes in `cache_creation_input_tokens`.
//! - `stop_reason: refusal` is an error of kind
//!   [`ContentFiltered`](catena_core::ProviderErrorKind::ContentFiltered), as OpenAI's
//!   refusals are; `pause_turn` and unknown reasons are kept as `FinishReason::Other`.
//! - [`ChatRequest::service_tier`](catena_core::ChatRequest::service_tier) is passed through
//!   verbatim (Anthropic knows `auto` and `standard_only`); `seed` and `previous_response_id`
//!   have no Anthropic counterpart and are not sent.
//! - The response id (`msg_...`) is [`ChatResponse::id`](catena_core::ChatResponse) and
//!   the `anthropic-ratelimit-*` headers are
//!   [`ChatResponse::rate_limit`](catena_core::ChatResponse) (a
//!   [`RateLimit`](catena_core::ChatChunk::RateLimit) chunk first in a stream).
//! - Errors: the status decides the kind (429 rate limited, 529 `overloaded_error` a
//!   retryable server error, both honouring `Retry-After`); `prompt is too long` is
//!   [`ContextLengthExceeded`](catena_core::ProviderErrorKind::ContextLengthExceeded). An
//!   `error` event mid-stream is typed the same way from its `error.type`.

mod chat;
mod client;
mod error;
mod stream;
mod wire;

pub use chat::{
    AnthropicChatModel, AnthropicChatModelBuilder, DEFAULT_CHAT_MODEL, DEFAULT_MAX_TOKENS,
    MAX_CACHE_BREAKPOINTS,
};
pub use client::{API_KEY_ENV, API_VERSION, BASE_URL_ENV, DEFAULT_BASE_URL, MODEL_ENV};
