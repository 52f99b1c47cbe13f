//! The demo client behind `gateway demo`: it ingests a folder of Markdown through
//! `POST /v1/documents` and asks one question through `POST /v1/query` of a running gateway,
//! over HTTP like any other client. The binary starts the gateway with the loopback port
//! and one-time key of [`Demo::configure`] and hands its address and the key to
//! [`Demo::run`].
//!
//! ```no_run
//! use example_gateway::demo::Demo;
//!
//! # async fn run() -> Result<(), example_gateway::GatewayError> {
//! let demo = Demo::from_args(&["--corpus".into(), "docs".into(), "What is Catena?".into()]);
//! let answer = demo.run("http://127.0.0.1:8080", "my-api-key").await?;
//! println!("{answer}");
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use catena_core::loader::{DirectoryLoader, DocumentLoader};
use serde_json::{json, Value};

use crate::auth::{generate_key, hash_key};
use crate::config::Config;
use crate::error::GatewayError;

/// What the demo asks when the command line names no question.
pub const DEFAULT_QUESTION: &str = "How does the recursive splitter choose where to cut?";

/// One demo run: the folder to ingest and the question to ask.
#[derive(Debug, Clone)]
pub struct Demo {
    corpus: PathBuf,
    question: String,
}

impl Demo {
    /// The demo `[--corpus DIR] [QUESTION...]` describes: the corpus defaults to this
    /// repository's `docs/`, the question to [`DEFAULT_QUESTION`].
    pub fn from_args(args: &[String]) -> Self {
        let mut corpus = None;
        let mut words: Vec<&str> = Vec::new();
        let mut args = args.iter();
        while let Some(a) = args.next() {
            if a == "--corpus" {
                let value = args.next().map(PathBuf::from);
                corpus = corpus.or(value);
            } else {
                words.push(a);
            }
        }
        let question = words.join(" ");
        Demo {
            corpus: corpus.unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs"))
            }),
            question: if question.trim().is_empty() {
                DEFAULT_QUESTION.to_owned()
            } else {
                question
            },
        }
    }

    /// Prepares `config` for a demo gateway: a free loopback port, and a fresh API key that
    /// replaces the configured ones; returns the key.
    ///
    /// # Errors
    /// [`GatewayError::Config`] when the system has no randomness for the key.
    pub fn configure(&self, config: &mut Config) -> Result<String, GatewayError> {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let key = generate_key()?;
        config.auth.api_key_sha256 = vec![hash_key(&key)];
        Ok(key)
    }

    /// Ingests the corpus into the gateway at `base_url` and asks the question, both with
    /// `api_key`; reports progress on stderr and returns the answer with its sources, as
    /// text to print.
    ///
    /// # Errors
    /// [`GatewayError::Config`] when the corpus has no Markdown or a request fails (the
    /// message has the gateway's answer), [`GatewayError::Backend`] when the corpus cannot
    /// be read.
    pub async fn run(&self, base_url: &str, api_key: &str) -> Result<String, GatewayError> {
        /// About how much text one ingest request carries.
        const INGEST_BATCH_BYTES: usize = 32 * 1024;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| GatewayError::Config(format!("http client: {e}")))?;
        let call = |path: &str, what: &'static str, body: Value| {
            let request = http
                .post(format!("{base_url}{path}"))
                .bearer_auth(api_key)
                .json(&body);
            async move {
                let res = request
                    .send()
                    .await
                    .map_err(|e| GatewayError::Config(format!("{what} request: {e}")))?;
                let status = res.status();
                let value: Value = res
                    .json()
                    .await
                    .map_err(|e| GatewayError::Config(format!("{what} response: {e}")))?;
                if !status.is_success() {
                    return Err(GatewayError::Config(format!(
                        "{what} failed ({status}): {value}"
                    )));
                }
                Ok(value)
            }
        };

        // Ingest the corpus through the API.
        let docs = DirectoryLoader::builder(&self.corpus)
            .include("**/*.md")
            .build()
            .map_err(catena_core::Error::from)?
            .load()?;
        if docs.is_empty() {
            return Err(GatewayError::Config(format!(
                "no Markdown files under {}",
                self.corpus.display()
            )));
        }
        // In requests of about INGEST_BATCH_BYTES each: every request is embedded within the
        // gateway's request timeout even on a slow, shared CPU.
        let mut batches: Vec<Vec<Value>> = Vec::new();
        let mut bytes = 0;
        for d in &docs {
            if batches.is_empty() || bytes + d.content.len() > INGEST_BATCH_BYTES {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += d.content.len();
            if let Some(batch) = batches.last_mut() {
                batch.push(
                    json!({ "source": d.source().unwrap_or("unknown"), "content": d.content }),
                );
            }
        }
        eprintln!(
            "POST {base_url}/v1/documents ({} files from {}, in {} requests)",
            docs.len(),
            self.corpus.display(),
            batches.len()
        );
        let mut report = serde_json::Map::new();
        for documents in batches {
            let part = call("/v1/documents", "ingest", json!({ "documents": documents })).await?;
            for (key, value) in part.as_object().into_iter().flatten() {
                let sum = report.get(key).and_then(Value::as_u64).unwrap_or(0)
                    + value.as_u64().unwrap_or(0);
                report.insert(key.clone(), json!(sum));
            }
        }
        eprintln!("ingest report: {}", Value::Object(report));

        eprintln!("POST {base_url}/v1/query");
        let answer = call("/v1/query", "query", json!({ "question": self.question })).await?;
        let mut out = format!(
            "Question: {}\n\nAnswer: {}\n\nSources:",
            self.question,
            answer["answer"].as_str().unwrap_or_default().trim()
        );
        for s in answer["sources"].as_array().into_iter().flatten() {
            let _ = write!(
                out,
                "\n  - {} (score {:.3})",
                s["source"].as_str().unwrap_or("?"),
                s["score"].as_f64().unwrap_or_default()
            );
        }
        Ok(out)
    }
}
