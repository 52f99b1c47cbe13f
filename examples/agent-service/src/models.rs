//! Picking the chat model and embedder from the environment.

use std::fmt;
use std::sync::Arc;

use catena_core::{ChatModel, Embedder, Error, Result};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::local::{LocalChatModel, LocalEmbedder};
use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};

/// The address the binary listens on when neither `--addr` nor `CATENA_AGENT_ADDR` is set.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// The answer length of the local chat model per model turn, in tokens.
const LOCAL_MAX_TOKENS: usize = 256;

/// A chat model, an embedder, and what they are (for the start-up log).
#[derive(Clone)]
pub struct Models {
    /// The chat model that drives the agent.
    pub chat: Arc<dyn ChatModel>,
    /// The embedder of the context documents.
    pub embedder: Arc<dyn Embedder>,
    /// Which models these are, in words.
    pub description: String,
}

impl fmt::Debug for Models {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Models")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The models named by the environment, in this order:
/// `OPENAI_API_KEY` (OpenAI, or any OpenAI-compatible server), then `GEMINI_API_KEY` /
/// `GOOGLE_API_KEY` (Gemini), then `OLLAMA_HOST` (Ollama), otherwise the in-process local
/// models from `CATENA_CHAT_MODEL` (a `.gguf` file) and `CATENA_EMBED_MODEL` (a
/// sentence-transformer directory); `eval "$(bash scripts/models.sh fetch)"` sets both.
///
/// # Errors
/// The provider's configuration error, or [`Error::InvalidConfig`] when nothing is set.
pub fn models_from_env() -> Result<Models> {
    if set("OPENAI_API_KEY") {
        let chat = OpenAiChatModel::from_env()?;
        let description = format!("OpenAI ({})", chat.model());
        return Ok(Models {
            chat: Arc::new(chat),
            embedder: Arc::new(OpenAiEmbedder::from_env()?),
            description,
        });
    }
    if set("GEMINI_API_KEY") || set("GOOGLE_API_KEY") {
        return Ok(Models {
            chat: Arc::new(GeminiChatModel::from_env()?),
            embedder: Arc::new(GeminiEmbedder::from_env()?),
            description: "Gemini".to_owned(),
        });
    }
    if set("OLLAMA_HOST") {
        return Ok(Models {
            chat: Arc::new(OllamaChatModel::from_env()?),
            embedder: Arc::new(OllamaEmbedder::from_env()?),
            description: "Ollama".to_owned(),
        });
    }
    let (Ok(chat_path), Ok(embed_path)) = (
        std::env::var("CATENA_CHAT_MODEL"),
        std::env::var("CATENA_EMBED_MODEL"),
    ) else {
        return Err(Error::invalid_config(
            "no model configured: set OPENAI_API_KEY, GEMINI_API_KEY or OLLAMA_HOST, or \
             CATENA_CHAT_MODEL and CATENA_EMBED_MODEL for the local models \
             (eval \"$(bash scripts/models.sh fetch)\")",
        ));
    };
    let chat = LocalChatModel::builder(&chat_path)
        .default_max_tokens(LOCAL_MAX_TOKENS)
        .build()?;
    let embedder = LocalEmbedder::load(&embed_path)?;
    Ok(Models {
        chat: Arc::new(chat),
        embedder: Arc::new(embedder),
        description: format!("local (chat {chat_path}, embeddings {embed_path})"),
    })
}
