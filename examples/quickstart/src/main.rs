//! Quickstart: answer a question over this repository's own documentation, offline.
//!
//! Shows the whole retrieval-augmented generation pipeline with real components — the
//! directory loader, the recursive splitter (Markdown separators), the in-memory vector
//! store, the vector-store retriever and a chat prompt template — and, without a provider
//! configured, the **test doubles** of `catena-core` for the two model calls: a
//! deterministic bag-of-words embedder and a scripted chat model that quotes the sentences
//! of the retrieved context that best match the question. It says so when it starts.
//!
//! Environment (all optional):
//! - `CATENA_DOCS_DIR` — the folder to answer from; default is this repository's `docs/`.
//! - `OPENAI_API_KEY`, else `GEMINI_API_KEY`, else `OLLAMA_HOST` — use that provider's chat
//!   model and embedder instead of the test doubles (`OPENAI_MODEL`, `GEMINI_MODEL`,
//!   `OLLAMA_MODEL`, `OLLAMA_EMBED_MODEL` pick the models).
//!
//! Run with `cargo run -p example-quickstart -- "your question"`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use catena_core::loader::{DirectoryLoader, DocumentLoader};
use catena_core::prompt::ChatPromptTemplate;
use catena_core::splitter::{Language, RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, EmbeddedDocument, Embedder, Error, FinishReason, Message,
    Result, Role, VectorStore, VectorStoreRetriever,
};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
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

    let (embedder, model, which) = pick_models()?;
    eprintln!("catena quickstart: in-memory vector store; models: {which}");

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

    // 2. Split.
    let splitter = RecursiveCharacterTextSplitter::from_language(Language::Markdown)
        .chunk_size(600)
        .chunk_overlap(60)
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

/// An embedder, a chat model, and a description of both for the start-up line.
type Models = (Arc<dyn Embedder>, Arc<dyn ChatModel>, String);

/// The provider named by the environment, or the test doubles.
fn pick_models() -> Result<Models> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if set("OPENAI_API_KEY") {
        let chat = OpenAiChatModel::from_env()?;
        let which = format!("OpenAI ({})", chat.model());
        return Ok((Arc::new(OpenAiEmbedder::from_env()?), Arc::new(chat), which));
    }
    if set("GEMINI_API_KEY") || set("GOOGLE_API_KEY") {
        return Ok((
            Arc::new(GeminiEmbedder::from_env()?),
            Arc::new(GeminiChatModel::from_env()?),
            "Gemini".to_owned(),
        ));
    }
    if set("OLLAMA_HOST") {
        return Ok((
            Arc::new(OllamaEmbedder::from_env()?),
            Arc::new(OllamaChatModel::from_env()?),
            "Ollama".to_owned(),
        ));
    }
    Ok((
        Arc::new(DeterministicEmbedder::new(512)),
        Arc::new(ScriptedChatModel::new().with_responder(extractive_answer)),
        "the catena-core TEST DOUBLES (deterministic bag-of-words embedder, extractive \
         scripted chat model) — set OPENAI_API_KEY, GEMINI_API_KEY or OLLAMA_HOST for a real \
         model, or run `bash scripts/demo.sh` for the in-process local models"
            .to_owned(),
    ))
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in",
    "is", "it", "of", "on", "or", "the", "to", "what", "when", "where", "which", "who", "why",
    "with",
];

fn content_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.len() > 1 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.trim_end_matches('s').to_owned())
        .collect()
}

/// The scripted model's rule: quote the (at most two) context sentences sharing the most
/// content words with the question, in their original order.
fn extractive_answer(request: &ChatRequest) -> Result<ChatResponse> {
    let text_of = |role: Role| {
        request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == role)
            .map(Message::text)
            .unwrap_or_default()
    };
    let system = text_of(Role::System);
    let question = text_of(Role::User);
    let context = system.split_once("Context:\n").map_or("", |(_, c)| c);
    let wanted = content_words(&question);

    // Unwrap hard-wrapped paragraphs, then cut into sentences. Chunks overlap, so a
    // fragment that starts mid-sentence (lower-case) is skipped.
    let sentences: Vec<String> = context
        .split("\n\n")
        .map(|para| para.split_whitespace().collect::<Vec<_>>().join(" "))
        .flat_map(|para| {
            para.split_inclusive(". ")
                .map(|s| s.trim().trim_end_matches('.').to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|s| {
            s.len() > 20
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_uppercase() || c == '`')
                && !s.starts_with('#')
                && !s.starts_with("---")
        })
        .collect();
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (content_words(s).intersection(&wanted).count(), i))
        .filter(|(score, _)| *score > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best: Vec<usize> = scored.iter().take(2).map(|(_, i)| *i).collect();
    best.sort_unstable();

    let text = if best.is_empty() {
        "The documents do not answer this question.".to_owned()
    } else {
        best.iter()
            .map(|&i| format!("{}.", sentences[i]))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(ChatResponse::new(Message::assistant(text)).with_finish_reason(FinishReason::Stop))
}
