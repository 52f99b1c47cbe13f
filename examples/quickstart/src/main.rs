//! Quickstart: answer a question over this repository's own documentation.
//!
//! Shows the whole retrieval-augmented generation pipeline with real components: the
//! directory loader, the recursive splitter (Markdown separators), the in-memory vector
//! store, the vector-store retriever, a chat prompt template, and a chat model and embedder
//! chosen from the environment by [`catena_llms::from_env`]. Without a provider configured
//! those are the in-process local models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2 on the
//! CPU, no network); it says which when it starts.
//!
//! Environment (all optional):
//! - `CATENA_DOCS_DIR` — the folder to answer from; default is this repository's `docs/`.
//! - `OPENAI_API_KEY`, else `GEMINI_API_KEY`, else `OLLAMA_HOST` — use that provider's chat
//!   model and embedder (`OPENAI_MODEL`, `OPENAI_EMBEDDING_MODEL`, `GEMINI_MODEL`,
//!   `OLLAMA_MODEL`, `OLLAMA_EMBED_MODEL` pick the models).
//! - Otherwise `CATENA_CHAT_MODEL` and `CATENA_EMBED_MODEL` — the local model files; by
//!   default the cache that `eval "$(bash scripts/models.sh fetch)"` fills.
//!
//! Run with `cargo run -p example-quickstart -- "your question"`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use catena_core::loader::{DirectoryLoader, DocumentLoader};
use catena_core::prompt::ChatPromptTemplate;
use catena_core::splitter::{Language, RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::{
    ChatRequest, EmbeddedDocument, Error, Result, VectorStore, VectorStoreRetriever,
};
use catena_vectorstores::InMemoryVectorStore;

const DEFAULT_QUESTION: &str = "How does the recursive splitter choose where to cut?";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let question = std::env::args()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned();
    let question = if question.is_empty() {
        DEFAULT_QUESTION.to_owned()
    } else {
        question
    };
    let root = std::env::var_os("CATENA_DOCS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")));

    let models = catena_llms::from_env()?;
    eprintln!(
        "catena quickstart: in-memory vector store; models: {}",
        models.description
    );
    let (embedder, model) = (models.embedder, models.chat);

    // 1. Load.
    let docs = DirectoryLoader::builder(&root)
        .include("**/*.md")
        .build()?
        .load()?;
    if docs.is_empty() {
        return Err(Error::invalid_input(format!(
            "no Markdown documents under {}",
            root.display()
        )));
    }

    // 2. Split. An embedder with a hard input window (the local one) measures chunks in its
    // own tokens, so none is cut off when embedded.
    let splitter = match models.chunk_tokens {
        Some((length, max_tokens)) => {
            RecursiveCharacterTextSplitter::from_language(Language::Markdown)
                .chunk_size(max_tokens)
                .chunk_overlap(max_tokens / 10)
                .length_function(length)
        }
        None => RecursiveCharacterTextSplitter::from_language(Language::Markdown)
            .chunk_size(600)
            .chunk_overlap(60),
    }
    .build()?;
    let chunks = splitter.split_documents(&docs);

    // 3. Embed and index.
    let store = Arc::new(InMemoryVectorStore::new());
    let texts: Vec<String> = chunks.iter().map(|c| c.content.clone()).collect();
    let vectors = embedder.embed_documents(&texts).await?;
    let batch = chunks
        .into_iter()
        .zip(vectors)
        .map(|(doc, v)| EmbeddedDocument::new(doc, v))
        .collect();
    let report = store.upsert(batch).await?;
    eprintln!(
        "indexed {} chunks from {} documents under {}",
        report.ids.len(),
        docs.len(),
        root.display()
    );

    // 4. Retrieve.
    let retriever = VectorStoreRetriever::new(embedder, store).with_k(3);
    let hits = retriever.retrieve_scored(&question).await?;

    // 5. Prompt and answer.
    let prompt = ChatPromptTemplate::builder()
        .system(
            "Answer the question using only the context below. \
             If the context does not contain the answer, say so.\n\nContext:\n{context}",
        )
        .user("{question}")
        .build()?;
    let context = hits
        .iter()
        .map(|h| h.document.content.as_str())
        .collect::<Vec<_>>()
        .join("\n\n---\n\n");
    let messages = prompt.format_messages([
        ("context", context.as_str()),
        ("question", question.as_str()),
    ])?;
    let answer = model.generate(ChatRequest::new(messages)).await?;

    println!("Question: {question}\n");
    println!("Answer: {}\n", answer.text());
    println!("Sources:");
    let mut seen = BTreeSet::new();
    for h in &hits {
        let source = h.document.source().unwrap_or("(unknown)");
        if seen.insert(source.to_owned()) {
            println!("  - {source} (score {:.3})", h.score);
        }
    }
    Ok(())
}
