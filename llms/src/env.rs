//! One chat model and one embedder picked from the environment: [`from_env`], the choice every
//! Catena program (the gateway, the agent service, the quickstart) makes the same way.
//!
//! The first row whose variable is set, and whose feature is compiled in, wins:
//!
//! | set | chat model + embedder | feature |
//! | --- | --- | --- |
//! | `OPENAI_API_KEY` | OpenAI or any OpenAI-compatible server (`OPENAI_BASE_URL`, `OPENAI_MODEL`, `OPENAI_EMBEDDING_MODEL`) | `openai` |
//! | `GEMINI_API_KEY` / `GOOGLE_API_KEY` | Gemini (`GEMINI_MODEL`, `GEMINI_EMBED_MODEL`) | `gemini` |
//! | `OLLAMA_HOST` | Ollama (`OLLAMA_MODEL`, `OLLAMA_EMBED_MODEL`) | `ollama` |
//! | nothing | in-process local models: `CATENA_CHAT_MODEL` (a `.gguf` file) and `CATENA_EMBED_MODEL` (a sentence-transformer directory), by default from the cache `scripts/models.sh fetch` fills ([`model_cache_dir`]) | `local` |
//!
//! Without the `local` feature, an environment that names no provider is an
//! [`Error::InvalidConfig`].
//!
//! ```no_run
//! # fn run() -> catena_core::Result<()> {
//! let providers = catena_llms::from_env()?;
//! eprintln!("models: {}", providers.description);
//! let dims = providers.embedder.dimensions();
//! # let _ = dims;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use catena_core::splitter::{Language, LengthFunction, RecursiveCharacterTextSplitter};
use catena_core::{ChatModel, Embedder, Error, Result};

/// A chat model and an embedder chosen together by [`from_env`], and what they are.
#[derive(Clone)]
#[non_exhaustive]
pub struct Providers {
    /// The chat model.
    pub chat: Arc<dyn ChatModel>,
    /// The embedder.
    pub embedder: Arc<dyn Embedder>,
    /// When the embedder has a hard input window (the local sentence-transformer): a length
    /// function counting its own tokens and the most tokens a chunk should have, so a
    /// splitter can make chunks that fit. `None` for the hosted providers.
    pub chunk_tokens: Option<(LengthFunction, usize)>,
    /// Which models these are, in words, for a start-up line (`OpenAI (gpt-4o-mini)`,
    /// `Gemini`, `Ollama`, `local models …`).
    pub description: String,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers")
            .field("description", &self.description)
            .field("chunk_tokens", &self.chunk_tokens.as_ref().map(|(_, n)| n))
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// The variable naming the local chat model's `.gguf` file.
    pub const CHAT_MODEL_ENV: &'static str = "CATENA_CHAT_MODEL";
    /// The variable naming the local embedder's model directory.
    pub const EMBED_MODEL_ENV: &'static str = "CATENA_EMBED_MODEL";
    /// The variable naming the model cache directory (see [`model_cache_dir`]).
    pub const MODEL_DIR_ENV: &'static str = "CATENA_MODEL_DIR";

    /// A recursive splitter for `language` whose chunks this embedder takes whole: measured
    /// in the embedder's own tokens when it has a hard window ([`chunk_tokens`](Self::chunk_tokens),
    /// the local one: 240 tokens, 10 % overlap), else 1,000 characters with 100 of overlap.
    ///
    /// # Errors
    /// Never for these settings; the splitter builder's [`Error::InvalidConfig`] otherwise.
    pub fn splitter(&self, language: Language) -> Result<RecursiveCharacterTextSplitter> {
        let builder = RecursiveCharacterTextSplitter::from_language(language);
        match &self.chunk_tokens {
            Some((length, max_tokens)) => builder
                .chunk_size(*max_tokens)
                .chunk_overlap(max_tokens / 10)
                .length_function(length.clone()),
            None => builder.chunk_size(1_000).chunk_overlap(100),
        }
        .build()
    }
}

/// The local chat model's file name in the cache.
#[cfg(feature = "local")]
const LOCAL_CHAT_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The local embedder's directory name in the cache.
#[cfg(feature = "local")]
const LOCAL_EMBED_DIR: &str = "all-MiniLM-L6-v2";
/// The local chat model's answer length when a request sets none, in tokens.
#[cfg(feature = "local")]
const LOCAL_MAX_TOKENS: usize = 256;

/// The cache `scripts/models.sh fetch` fills: `$CATENA_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/catena/models`, else `$HOME/.cache/catena/models`.
pub fn model_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(Providers::MODEL_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("catena/models")
}

/// Whether `name` is set to something other than blanks.
#[cfg(any(feature = "openai", feature = "gemini", feature = "ollama"))]
fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The chat model and embedder the environment names (see the [module docs](self) for the
/// variables and their order).
///
/// # Errors
/// The chosen provider's configuration error; [`Error::InvalidConfig`] when the local models
/// are chosen but a model file is missing, or when nothing is set and the `local` feature is
/// off.
pub fn from_env() -> Result<Providers> {
    #[cfg(feature = "openai")]
    if set(crate::openai::API_KEY_ENV) {
        use crate::openai::{OpenAiChatModel, OpenAiEmbedder};
        let chat = OpenAiChatModel::from_env()?;
        let description = format!("OpenAI ({})", chat.model());
        return Ok(Providers {
            embedder: Arc::new(OpenAiEmbedder::from_env()?),
            chat: Arc::new(chat),
            chunk_tokens: None,
            description,
        });
    }
    #[cfg(feature = "gemini")]
    if set(crate::gemini::GEMINI_API_KEY_ENV) || set(crate::gemini::GOOGLE_API_KEY_ENV) {
        use crate::gemini::{GeminiChatModel, GeminiEmbedder};
        return Ok(Providers {
            embedder: Arc::new(GeminiEmbedder::from_env()?),
            chat: Arc::new(GeminiChatModel::from_env()?),
            chunk_tokens: None,
            description: "Gemini".to_owned(),
        });
    }
    #[cfg(feature = "ollama")]
    if set(crate::ollama::OLLAMA_HOST_ENV) {
        use crate::ollama::{OllamaChatModel, OllamaEmbedder};
        return Ok(Providers {
            embedder: Arc::new(OllamaEmbedder::from_env()?),
            chat: Arc::new(OllamaChatModel::from_env()?),
            chunk_tokens: None,
            description: "Ollama".to_owned(),
        });
    }
    local()
}

/// The in-process local models (feature `local`), whatever provider the environment names:
/// all-MiniLM-L6-v2 and SmolLM2-135M-Instruct from `CATENA_EMBED_MODEL` and
/// `CATENA_CHAT_MODEL`, by default from the cache ([`model_cache_dir`]) that
/// `scripts/models.sh fetch` fills. Answers are at most 256 tokens unless a request says
/// otherwise.
///
/// # Errors
/// [`Error::InvalidConfig`] naming the missing file and how to fetch it; the models' load
/// errors.
#[cfg(feature = "local")]
pub fn local_models() -> Result<Providers> {
    local()
}

/// The in-process local models.
#[cfg(feature = "local")]
fn local() -> Result<Providers> {
    use crate::local::{LocalChatModel, LocalEmbedder};
    let embed_dir = local_path(Providers::EMBED_MODEL_ENV, LOCAL_EMBED_DIR)?;
    let chat_file = local_path(Providers::CHAT_MODEL_ENV, LOCAL_CHAT_FILE)?;
    let embedder = LocalEmbedder::load(&embed_dir)?;
    // Chunks must fit the embedder's window (all-MiniLM-L6-v2: 256 tokens): measure them with
    // its own tokenizer, leaving room for its special tokens.
    let counter = embedder.clone();
    let limit = embedder.max_length().saturating_sub(16).max(16);
    let chunk_tokens = Some((
        LengthFunction::custom(move |text| counter.count_tokens(text).unwrap_or(text.len())),
        limit,
    ));
    let chat = LocalChatModel::builder(&chat_file)
        .default_max_tokens(LOCAL_MAX_TOKENS)
        .build()?;
    Ok(Providers {
        chat: Arc::new(chat),
        embedder: Arc::new(embedder),
        chunk_tokens,
        description: format!(
            "local models, in process on the CPU (chat {}, embeddings {})",
            chat_file.display(),
            embed_dir.display()
        ),
    })
}

/// Without the `local` feature there is no fallback.
#[cfg(not(feature = "local"))]
fn local() -> Result<Providers> {
    Err(Error::invalid_config(
        "no model configured: set OPENAI_API_KEY, GEMINI_API_KEY or OLLAMA_HOST (or build \
         catena-llms with the `local` feature for the in-process models)",
    ))
}

/// The path `var` names, else `default` in the model cache; it must exist.
#[cfg(feature = "local")]
fn local_path(var: &str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| model_cache_dir().join(default));
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::invalid_config(format!(
            "no provider is configured, so the local models are used, but {} is missing: run \
             `eval \"$(bash scripts/models.sh fetch)\"` (or set {var}, or OPENAI_API_KEY / \
             GEMINI_API_KEY / OLLAMA_HOST)",
            path.display()
        )))
    }
}
