//! Which chat model, embedder, vector store and record manager the gateway runs on, chosen
//! from the environment.
//!
//! | set | chat model + embedder ([`catena_llms::from_env`]) |
//! | --- | --- |
//! | `OPENAI_API_KEY` | OpenAI (`OPENAI_MODEL`, `OPENAI_EMBEDDING_MODEL`) |
//! | `GEMINI_API_KEY` / `GOOGLE_API_KEY` | Gemini (`GEMINI_MODEL`, `GEMINI_EMBED_MODEL`) |
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
//! use example_gateway::{config::Config, Backends};
//!
//! # async fn run() -> Result<(), example_gateway::GatewayError> {
//! let backends = Backends::from_config(&Config::default()).await?;
//! println!("running on {}", backends.description);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use catena_core::splitter::LengthFunction;
use catena_core::{ChatModel, Embedder, RecordManager, VectorStore};
use catena_vectorstores::pgvector::PgVectorStore;
use catena_vectorstores::qdrant::{PayloadIndexKind, QdrantStore};
use catena_vectorstores::{HnswConfig, InMemoryVectorStore, PostgresRecordManager};

use crate::config::Config;
use crate::error::GatewayError;
use crate::records::FileRecordManager;

/// The components the gateway runs on: build it yourself to run the gateway on other
/// components (tests use the scripted model), or with [`Backends::from_config`].
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

/// Whether `name` is set to something other than blanks.
fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

impl Backends {
    /// Chooses every component from the environment (see the module docs).
    ///
    /// # Errors
    /// [`GatewayError::Backend`] when the chosen models or store cannot be set up (missing
    /// local model files, a bad URL, a provider client error), [`GatewayError::Config`] when
    /// the data directory cannot be created.
    pub async fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let catena_llms::Providers {
            chat,
            embedder,
            chunk_tokens,
            description: models,
            ..
        } = catena_llms::from_env()?;

        // Private to the gateway's user (0700 on unix): it holds the documents.
        let mut data_dir = std::fs::DirBuilder::new();
        data_dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut data_dir, 0o700);
        data_dir.create(&config.data_dir).map_err(|e| {
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
                    .dimensions(embedder.dimensions())
                    // Every retrieval filters by tenant: index it.
                    .payload_index(crate::auth::TENANT_METADATA_KEY, PayloadIndexKind::Keyword);
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
                    .url(url.clone())
                    .collection("catena_documents")
                    .dimensions(embedder.dimensions())
                    .build()
                    .await?;
                let records = PostgresRecordManager::builder().url(url).build()?;
                (
                    Arc::new(store),
                    Arc::new(records),
                    "PostgreSQL/pgvector (table catena_documents)".to_owned(),
                )
            } else {
                let path = config.data_dir.join("vectors.json");
                let mut builder = InMemoryVectorStore::builder()
                    .dimensions(embedder.dimensions())
                    .precision(config.rag.vector_precision)
                    .persist_to(&path);
                if config.rag.hnsw_min_rows > 0 {
                    builder = builder.hnsw(HnswConfig::new().min_rows(config.rag.hnsw_min_rows));
                }
                let store = Arc::new(builder.build()?);
                // A large persisted store gets its graph now, not in the first question's
                // request (a minute at 100,000 chunks).
                let ready = Arc::clone(&store);
                tokio::task::spawn_blocking(move || ready.prepare_index());
                (
                    store,
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
