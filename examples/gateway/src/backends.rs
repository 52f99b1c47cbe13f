//! Which chat model, embedder, vector store and record manager the gateway runs on, chosen
//! from the environment.
//!
//! | set | chat model + embedder |
//! | --- | --- |
//! | `OPENAI_API_KEY` | OpenAI (`OPENAI_MODEL`, `OPENAI_EMBED_MODEL`) |
//! | `GEMINI_API_KEY` / `GOOGLE_API_KEY` | Gemini |
//! | `OLLAMA_HOST` | Ollama (`OLLAMA_MODEL`, `OLLAMA_EMBED_MODEL`) |
//! | nothing | **embedded default**: in-process SmolLM2-135M + all-MiniLM-L6-v2 (`CATENA_CHAT_MODEL`, `CATENA_EMBED_MODEL`, or the cache `scripts/models.sh fetch` fills) |
//!
//! | set | vector store + ingest records |
//! | --- | --- |
//! | `QDRANT_URL` (`QDRANT_API_KEY`) | Qdrant collection `catena` + records in `<data_dir>/records.json` |
//! | `DATABASE_URL` | PostgreSQL/pgvector table `catena_documents` + records in PostgreSQL |
//! | nothing | **embedded default**: in-memory store persisted to `<data_dir>/vectors.json` + records in `<data_dir>/records.json` |
//!
//! ```no_run
//! use example_gateway::{backends::Backends, config::Config};
//!
//! # async fn run() -> Result<(), example_gateway::GatewayError> {
//! let backends = Backends::from_env(&Config::default()).await?;
//! println!("running on {}", backends.description);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use catena_chains::indexing::{PostgresRecordManager, RecordManager};
use catena_core::splitter::LengthFunction;
use catena_core::{ChatModel, Embedder, VectorStore};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::local::{LocalChatModel, LocalEmbedder};
use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
use catena_vectorstores::pgvector::PgVectorStore;
use catena_vectorstores::qdrant::QdrantStore;
use catena_vectorstores::InMemoryVectorStore;

use crate::config::Config;
use crate::records::FileRecordManager;
use crate::GatewayError;

/// The components the gateway runs on: build it yourself to run the gateway on other
/// components (tests use the scripted model), or with [`Backends::from_env`].
pub struct Backends {
    /// Embeds documents and questions.
    pub embedder: Arc<dyn Embedder>,
    /// Answers questions.
    pub chat: Arc<dyn ChatModel>,
    /// Holds the chunks.
    pub store: Arc<dyn VectorStore>,
    /// Remembers what was ingested (incremental indexing).
    pub records: Arc<dyn RecordManager>,
    /// How ingest measures chunks when the embedder has a hard token limit: the length
    /// function (the embedder's own tokenizer) and the most tokens a chunk may have. `None`
    /// splits by characters (`rag.chunk_size`).
    pub chunk_tokens: Option<(LengthFunction, usize)>,
    /// A line saying what all this is, for the start-up log.
    pub description: String,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The default cache of `scripts/models.sh`.
pub fn model_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CATENA_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("catena/models")
}

fn local_path(var: &str, default: &str) -> Result<PathBuf, GatewayError> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| model_cache_dir().join(default));
    if path.exists() {
        Ok(path)
    } else {
        Err(GatewayError::Config(format!(
            "no provider is configured, so the embedded local models are used, but {} is \
             missing: run `eval \"$(bash scripts/models.sh fetch)\"` (or set {var}, or \
             OPENAI_API_KEY / GEMINI_API_KEY / OLLAMA_HOST)",
            path.display()
        )))
    }
}

impl Backends {
    /// Chooses every component from the environment (see the module docs).
    ///
    /// # Errors
    /// [`GatewayError::Config`] when the chosen backend cannot be set up (missing local model
    /// files, a bad URL), [`GatewayError::Backend`] for provider client errors.
    pub async fn from_env(config: &Config) -> Result<Self, GatewayError> {
        let mut chunk_tokens = None;
        let (embedder, chat, models): (Arc<dyn Embedder>, Arc<dyn ChatModel>, String) =
            if set("OPENAI_API_KEY") {
                let chat = OpenAiChatModel::from_env()?;
                let which = format!("OpenAI ({})", chat.model());
                (Arc::new(OpenAiEmbedder::from_env()?), Arc::new(chat), which)
            } else if set("GEMINI_API_KEY") || set("GOOGLE_API_KEY") {
                (
                    Arc::new(GeminiEmbedder::from_env()?),
                    Arc::new(GeminiChatModel::from_env()?),
                    "Gemini".to_owned(),
                )
            } else if set("OLLAMA_HOST") {
                (
                    Arc::new(OllamaEmbedder::from_env()?),
                    Arc::new(OllamaChatModel::from_env()?),
                    "Ollama".to_owned(),
                )
            } else {
                let embed_dir = local_path("CATENA_EMBED_MODEL", "all-MiniLM-L6-v2")?;
                let chat_file = local_path("CATENA_CHAT_MODEL", "SmolLM2-135M-Instruct.Q4_1.gguf")?;
                let embedder = LocalEmbedder::load(&embed_dir)?;
                // Chunks must fit the embedder's window (all-MiniLM-L6-v2: 256 tokens): measure
                // them with its own tokenizer, leaving room for its special tokens.
                let counter = embedder.clone();
                let limit = embedder.max_length().saturating_sub(16).max(16);
                chunk_tokens = Some((
                    LengthFunction::custom(move |text| {
                        counter.count_tokens(text).unwrap_or(text.len())
                    }),
                    limit,
                ));
                let chat = LocalChatModel::builder(&chat_file)
                    .default_max_tokens(config.rag.max_answer_tokens as usize)
                    .build()?;
                (
                    Arc::new(embedder),
                    Arc::new(chat),
                    format!(
                        "embedded local models (in process, CPU): {} and {}",
                        chat_file.display(),
                        embed_dir.display()
                    ),
                )
            };

        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            GatewayError::Config(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let records_file = config.data_dir.join("records.json");
        let (store, records, storage): (Arc<dyn VectorStore>, Arc<dyn RecordManager>, String) =
            if set("QDRANT_URL") {
                let mut builder = QdrantStore::builder()
                    .url(std::env::var("QDRANT_URL").unwrap_or_default())
                    .collection("catena")
                    .dimensions(embedder.dimensions());
                if set("QDRANT_API_KEY") {
                    builder = builder.api_key(std::env::var("QDRANT_API_KEY").unwrap_or_default());
                }
                (
                    Arc::new(builder.build()?),
                    Arc::new(FileRecordManager::open(&records_file)?),
                    "Qdrant (collection catena)".to_owned(),
                )
            } else if set("DATABASE_URL") {
                let url = std::env::var("DATABASE_URL").unwrap_or_default();
                let store = PgVectorStore::builder()
                    .connection_string(url.clone())
                    .collection("catena_documents")
                    .dimensions(embedder.dimensions())
                    .build()
                    .await?;
                let records = PostgresRecordManager::builder()
                    .connection_string(url)
                    .build()?;
                (
                    Arc::new(store),
                    Arc::new(records),
                    "PostgreSQL/pgvector (table catena_documents)".to_owned(),
                )
            } else {
                let path = config.data_dir.join("vectors.json");
                let store = InMemoryVectorStore::builder()
                    .dimensions(embedder.dimensions())
                    .persist_to(&path)
                    .build()?;
                (
                    Arc::new(store),
                    Arc::new(FileRecordManager::open(&records_file)?),
                    format!(
                        "embedded in-memory vector store persisted to {}",
                        path.display()
                    ),
                )
            };
        Ok(Backends {
            embedder,
            chat,
            store,
            records,
            chunk_tokens,
            description: format!("models: {models}; storage: {storage}"),
        })
    }
}
