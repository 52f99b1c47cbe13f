//! Hybrid search: PostgreSQL full text and vector similarity, fused with reciprocal rank
//! fusion (RRF).

use catena_core::backend::validate_vector;
use catena_core::{Document, Embedding, Error, Filter, Result, ScoredDocument};

use super::filter::compile;
use super::sql::{retry_once, Params, PgFailure};
use super::store::{document_from_row, operator, PgVectorStore, QueryOptions};

/// A hybrid query: `text` against the collection's full-text column, `vector` against its
/// embeddings, each ranked separately and fused with weighted reciprocal rank fusion:
/// `score = w_vector / (rrf_k + vector_rank) + w_text / (rrf_k + text_rank)` (a missing rank
/// adds nothing).
///
/// ```
/// use catena_vectorstores::pgvector::HybridRequest;
/// let req = HybridRequest::new("rust borrow checker", vec![0.1, 0.2], 5)
///     .with_weights(1.0, 0.5)
///     .with_rrf_k(60.0);
/// assert_eq!(req.fetch_k, 20);
/// assert!(req.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HybridRequest {
    /// The keyword query, parsed with `websearch_to_tsquery` (quotes for phrases, `or`,
    /// `-word` to exclude). Empty: vector ranking only.
    pub text: String,
    /// The query vector.
    pub vector: Embedding,
    /// How many results.
    pub k: usize,
    /// How many candidates each ranking contributes (default `max(4·k, 20)`, at least `k`).
    pub fetch_k: usize,
    /// Only documents whose metadata match.
    pub filter: Option<Filter>,
    /// Weight of the vector ranking (default 1).
    pub vector_weight: f32,
    /// Weight of the full-text ranking (default 1).
    pub text_weight: f32,
    /// The RRF constant; larger flattens the head of each ranking (default 60).
    pub rrf_k: f32,
}

impl HybridRequest {
    /// The `k` best documents for `text` and `vector`, equally weighted, RRF constant 60.
    pub fn new(text: impl Into<String>, vector: Embedding, k: usize) -> Self {
        HybridRequest {
            text: text.into(),
            vector,
            k,
            fetch_k: (k.saturating_mul(4)).max(20),
            filter: None,
            vector_weight: 1.0,
            text_weight: 1.0,
            rrf_k: 60.0,
        }
    }

    /// Sets the weights of the vector and the full-text rankings.
    #[must_use]
    pub fn with_weights(mut self, vector: f32, text: f32) -> Self {
        self.vector_weight = vector;
        self.text_weight = text;
        self
    }

    /// Sets the RRF constant.
    #[must_use]
    pub fn with_rrf_k(mut self, rrf_k: f32) -> Self {
        self.rrf_k = rrf_k;
        self
    }

    /// Sets how many candidates each ranking contributes.
    #[must_use]
    pub fn with_fetch_k(mut self, fetch_k: usize) -> Self {
        self.fetch_k = fetch_k;
        self
    }

    /// Sets the metadata filter (applied to both rankings).
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Checks `k`, `fetch_k`, the weights, the RRF constant, the vector and the filter.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::invalid_input("k must be at least 1"));
        }
        if self.fetch_k < self.k {
            return Err(Error::invalid_input("fetch_k must be at least k"));
        }
        for (name, w) in [("vector", self.vector_weight), ("text", self.text_weight)] {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::invalid_input(format!(
                    "the {name} weight must be finite and non-negative, got {w}"
                )));
            }
        }
        if self.vector_weight == 0.0 && self.text_weight == 0.0 {
            return Err(Error::invalid_input("at least one weight must be positive"));
        }
        if !self.rrf_k.is_finite() || self.rrf_k < 0.0 {
            return Err(Error::invalid_input(format!(
                "rrf_k must be finite and non-negative, got {}",
                self.rrf_k
            )));
        }
        if self.text.contains('\0') {
            return Err(Error::invalid_input("the text contains a NUL character"));
        }
        validate_vector(&self.vector)?;
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }
}

/// A hybrid search hit: the document, its fused score, and its rank (from 1) in each
/// ranking it appeared in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HybridHit {
    /// The document, with its id.
    pub document: Document,
    /// The fused RRF score; higher is better.
    pub score: f32,
    /// Rank among the vector candidates, if it was one.
    pub vector_rank: Option<usize>,
    /// Rank among the full-text matches, if it matched.
    pub text_rank: Option<usize>,
}

impl From<HybridHit> for ScoredDocument {
    fn from(hit: HybridHit) -> Self {
        ScoredDocument::new(hit.document, hit.score)
    }
}

impl PgVectorStore {
    /// Hybrid search: the `fetch_k` nearest documents by vector and the `fetch_k` best
    /// full-text matches (`websearch_to_tsquery` against the generated `tsvector` column,
    /// ranked by `ts_rank_cd`), both under the filter, fused with weighted reciprocal rank
    /// fusion in one SQL statement. A document only one ranking found still competes, so a
    /// keyword-only match can surface.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad request (see [`HybridRequest::validate`]) or a
    /// vector of the wrong dimension; [`Error::Provider`] for database failures.
    pub async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>> {
        request.validate()?;
        self.check_query(&request.vector)?;
        let mut params = Params::new();
        let v = params.push(pgvector::Vector::from(request.vector.clone()));
        let text = params.push(request.text.clone());
        let fetch = params.push(i64::try_from(request.fetch_k).unwrap_or(i64::MAX));
        let k = params.push(i64::try_from(request.k).unwrap_or(i64::MAX));
        let wv = params.push(f64::from(request.vector_weight));
        let wt = params.push(f64::from(request.text_weight));
        let rrf = params.push(f64::from(request.rrf_k));
        // The same placeholders serve both rankings.
        let filter = match &request.filter {
            Some(f) => compile(f, &mut params)?,
            None => "TRUE".to_owned(),
        };
        let t = self.table_sql();
        let sql = format!(
            "WITH v AS MATERIALIZED (\
               SELECT id, embedding {op} {v} AS distance FROM {t} \
               WHERE {filter} ORDER BY distance LIMIT {fetch}), \
             vr AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM v), \
             x AS MATERIALIZED (\
               SELECT id, ts_rank_cd(content_tsv, q) AS relevance \
               FROM {t}, websearch_to_tsquery({cfg}::text::regconfig, {text}::text) AS q \
               WHERE content_tsv @@ q AND {filter} ORDER BY relevance DESC, id LIMIT {fetch}), \
             xr AS (SELECT id, row_number() OVER (ORDER BY relevance DESC, id) AS rank FROM x), \
             fused AS (\
               SELECT COALESCE(vr.id, xr.id) AS id, vr.rank AS vector_rank, xr.rank AS text_rank, \
                 COALESCE({wv}::float8 / ({rrf}::float8 + vr.rank), 0) \
                 + COALESCE({wt}::float8 / ({rrf}::float8 + xr.rank), 0) AS score \
               FROM vr FULL OUTER JOIN xr ON vr.id = xr.id) \
             SELECT d.id, d.content, d.metadata, f.score, f.vector_rank, f.text_rank \
             FROM fused f JOIN {t} d ON d.id = f.id \
             ORDER BY f.score DESC, f.id LIMIT {k}",
            op = operator(self.metric()),
            cfg = params.push(self.text_search_config().to_owned()),
        );
        params.check_limit()?;
        let rows = retry_once("hybrid_search", || {
            self.query_rows(&sql, &params, QueryOptions::default())
        })
        .await?;
        rows.iter()
            .map(|row| {
                let document = document_from_row(row)?;
                let score: f64 = row.try_get("score").map_err(PgFailure::from)?;
                let vr: Option<i64> = row.try_get("vector_rank").map_err(PgFailure::from)?;
                let xr: Option<i64> = row.try_get("text_rank").map_err(PgFailure::from)?;
                Ok(HybridHit {
                    document,
                    score: score as f32,
                    vector_rank: vr.and_then(|r| usize::try_from(r).ok()),
                    text_rank: xr.and_then(|r| usize::try_from(r).ok()),
                })
            })
            .collect::<std::result::Result<Vec<_>, PgFailure>>()
            .map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let ok = HybridRequest::new("q", vec![1.0, 0.0], 3);
        assert!(ok.validate().is_ok());
        assert_eq!(ok.fetch_k, 20);
        assert_eq!(HybridRequest::new("q", vec![1.0], 10).fetch_k, 40);
        for bad in [
            HybridRequest::new("q", vec![1.0], 0),
            ok.clone().with_fetch_k(2),
            ok.clone().with_weights(-1.0, 1.0),
            ok.clone().with_weights(0.0, 0.0),
            ok.clone().with_weights(f32::NAN, 1.0),
            ok.clone().with_rrf_k(f32::INFINITY),
            HybridRequest::new("q", vec![f32::NAN], 1),
            ok.clone().with_filter(Filter::eq("a') OR 1=1 --", 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }
}
