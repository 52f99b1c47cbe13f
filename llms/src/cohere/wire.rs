//! Cohere's v2 rerank wire format (`POST /v2/rerank`), as its API reference documents it.

use serde::{Deserialize, Serialize};

/// The request body. Field order is the order on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct RerankRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) query: &'a str,
    pub(crate) documents: Vec<&'a str>,
    pub(crate) top_n: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens_per_doc: Option<u32>,
}

/// The response body: `{id, results: [{index, relevance_score}], meta}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RerankResponse {
    #[serde(default)]
    pub(crate) id: Option<String>,
    pub(crate) results: Vec<RerankItem>,
    #[serde(default)]
    pub(crate) meta: Option<Meta>,
}

/// One scored document: its index in the request's `documents`.
#[derive(Debug, Deserialize)]
pub(crate) struct RerankItem {
    pub(crate) index: usize,
    pub(crate) relevance_score: f64,
}

/// `meta`: what the call was billed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) billed_units: Option<BilledUnits>,
}

/// `meta.billed_units`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BilledUnits {
    #[serde(default)]
    pub(crate) search_units: Option<f64>,
}
