//! `POST /v1/documents`: ingest documents (split, embed, upsert through incremental indexing)
//! and answer with the ingest report.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use catena_chains::{index, Cleanup, IndexOptions};
use catena_core::splitter::{RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::{Document, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::body::Body;
use super::upstream::{
    budget_spent, estimate_tokens, reserve_embedding_budget, timeout_problem, upstream,
};
use crate::auth::{Caller, TENANT_METADATA_KEY};
use crate::problem::Problem;
use crate::state::{caller_of, AppState};

/// The most documents in one request.
const MAX_DOCUMENTS: usize = 1000;
/// The most characters of a document's `source`.
const MAX_SOURCE_CHARS: usize = 512;

/// The body of `POST /v1/documents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestRequest {
    documents: Vec<IngestDocument>,
}

/// One document to ingest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestDocument {
    /// Where the text comes from; ingesting the same source again replaces its chunks.
    source: String,
    content: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// What an ingest did.
#[derive(Debug, Serialize)]
pub(crate) struct IngestReport {
    documents: usize,
    chunks: usize,
    added: usize,
    updated: usize,
    skipped: usize,
    deleted: usize,
}

/// `POST /v1/documents`: validates the documents, splits them (by the embedder's tokens when
/// it has a hard window, else by characters) and indexes the chunks incrementally, in the
/// caller's tenant: each chunk carries the tenant in its metadata (so equal documents of two
/// tenants are two chunks) and the ingest records live in the tenant's namespace (so
/// re-ingesting a source replaces only the tenant's own chunks).
pub(crate) async fn ingest(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Body(body): Body<IngestRequest>,
) -> Result<Json<IngestReport>, Problem> {
    let Caller {
        id: caller, tenant, ..
    } = caller_of(caller.as_deref());
    if body.documents.is_empty() {
        return Err(Problem::invalid_field("documents", "must not be empty"));
    }
    if body.documents.len() > MAX_DOCUMENTS {
        return Err(Problem::invalid_field(
            "documents",
            format!("at most {MAX_DOCUMENTS} per request"),
        ));
    }
    for (i, d) in body.documents.iter().enumerate() {
        if d.source.trim().is_empty() || d.source.chars().count() > MAX_SOURCE_CHARS {
            return Err(Problem::invalid_field(
                &format!("documents[{i}].source"),
                format!("must be 1 to {MAX_SOURCE_CHARS} characters"),
            ));
        }
        if d.content.trim().is_empty() {
            return Err(Problem::invalid_field(
                &format!("documents[{i}].content"),
                "must not be empty",
            ));
        }
        if d.metadata.contains_key(TENANT_METADATA_KEY) {
            return Err(Problem::invalid_field(
                &format!("documents[{i}].metadata.{TENANT_METADATA_KEY}"),
                "is reserved: the gateway sets it from the API key",
            ));
        }
    }
    let builder = match &state.chunk_tokens {
        Some((length, max_tokens)) => RecursiveCharacterTextSplitter::builder()
            .chunk_size(*max_tokens)
            .chunk_overlap(max_tokens / 10)
            .length_function(length.clone()),
        None => RecursiveCharacterTextSplitter::builder()
            .chunk_size(state.config.rag.chunk_size)
            .chunk_overlap(state.config.rag.chunk_overlap),
    };
    let splitter = builder.build().map_err(|e| Problem::from_catena(&e))?;
    let n = body.documents.len();
    let docs: Vec<Document> = body
        .documents
        .into_iter()
        .map(|d| {
            Document::new(d.content)
                .with_metadata_map(d.metadata)
                .with_metadata("source", d.source)
                .with_metadata(TENANT_METADATA_KEY, tenant.as_str())
        })
        .collect();
    let chunks = splitter.split_documents(&docs);
    let chunk_count = chunks.len();
    // Embedding tokens count against the key's budget: all of the batch is reserved (an
    // ingest is never partial), and the chunks that were actually embedded are charged.
    let estimate: u64 = chunks.iter().map(|c| estimate_tokens(&c.content)).sum();
    let reservation = reserve_embedding_budget(&state, &caller, estimate).await?;
    if state.budgets.is_limited() && reservation.amount() < estimate {
        reservation.settle(&Usage::new(0, 0));
        return Err(budget_spent("token", std::time::Duration::from_secs(1)).with_detail(format!(
            "embedding these documents needs about {estimate} tokens; this API key has less left of its budget"
        )));
    }
    let options = IndexOptions::new()
        .cleanup(Cleanup::Incremental)
        .namespace(format!("tenant:{tenant}"));
    let work = index(
        chunks,
        &*state.records,
        &*state.store,
        &*state.embedder,
        &options,
    );
    let report = tokio::time::timeout(state.request_timeout(), work)
        .await
        .map_err(|_| timeout_problem())?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            reservation.settle(&Usage::new(0, 0));
            return Err(upstream("ingest", &e));
        }
    };
    let embedded = (report.added + report.updated) as u64;
    let charge = if chunk_count == 0 {
        0
    } else {
        estimate * embedded.min(chunk_count as u64) / chunk_count as u64
    };
    metrics::counter!("embedding_tokens_total").increment(charge);
    reservation.settle(&Usage::new(charge, 0));
    Ok(Json(IngestReport {
        documents: n,
        chunks: chunk_count,
        added: report.added,
        updated: report.updated,
        skipped: report.skipped,
        deleted: report.deleted,
    }))
}
