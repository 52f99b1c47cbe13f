//! Hybrid search: PostgreSQL full text and vector similarity, fused in one SQL statement
//! (reciprocal rank fusion or weighted normalised scores, per request).

use async_trait::async_trait;
use catena_core::{Error, Fusion, HybridHit, HybridRequest, HybridSearch, Result};

use super::filter::compile;
use super::sql::{retry_once, Params, PgFailure};
use super::store::{document_from_row, operator, PgVectorStore, QueryOptions};

#[async_trait]
impl HybridSearch for PgVectorStore {
    /// The `fetch_k` nearest documents by vector and the `fetch_k` best full-text matches
    /// (`websearch_to_tsquery` against the generated `tsvector` column, ranked by
    /// `ts_rank_cd`), both under the filter, fused in one SQL statement as
    /// [`catena_core::fuse`] fuses (RRF, or min-max normalised similarities and text ranks
    /// for [`Fusion::Weighted`]). A document only one ranking found still competes, so a
    /// keyword-only match can surface.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad request (see [`HybridRequest::validate`]) or a
    /// vector of the wrong dimension; [`Error::Provider`] for database failures.
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>> {
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
        let weighted = params.push(request.fusion == Fusion::Weighted);
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
             vr AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rank, \
               COALESCE((max(distance) OVER () - distance) \
                 / NULLIF(max(distance) OVER () - min(distance) OVER (), 0), 1) AS norm FROM v), \
             x AS MATERIALIZED (\
               SELECT id, ts_rank_cd(content_tsv, q) AS relevance \
               FROM {t}, websearch_to_tsquery({cfg}::text::regconfig, {text}::text) AS q \
               WHERE content_tsv @@ q AND {filter} ORDER BY relevance DESC, id LIMIT {fetch}), \
             xr AS (SELECT id, row_number() OVER (ORDER BY relevance DESC, id) AS rank, \
               COALESCE((relevance - min(relevance) OVER ()) \
                 / NULLIF(max(relevance) OVER () - min(relevance) OVER (), 0), 1) AS norm FROM x), \
             fused AS (\
               SELECT COALESCE(vr.id, xr.id) AS id, vr.rank AS vector_rank, xr.rank AS text_rank, \
                 CASE WHEN {weighted}::bool THEN \
                   COALESCE({wv}::float8 * vr.norm, 0) + COALESCE({wt}::float8 * xr.norm, 0) \
                 ELSE COALESCE({wv}::float8 / ({rrf}::float8 + vr.rank), 0) \
                   + COALESCE({wt}::float8 / ({rrf}::float8 + xr.rank), 0) END AS score \
               FROM vr FULL OUTER JOIN xr ON vr.id = xr.id) \
             SELECT d.id, d.content, d.metadata, f.score, f.vector_rank, f.text_rank \
             FROM fused f JOIN {t} d ON d.id = f.id \
             ORDER BY f.score DESC, f.vector_rank NULLS LAST, f.text_rank NULLS LAST, f.id \
             LIMIT {k}",
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
                Ok(HybridHit::new(
                    document,
                    score as f32,
                    vr.and_then(|r| usize::try_from(r).ok()),
                    xr.and_then(|r| usize::try_from(r).ok()),
                ))
            })
            .collect::<std::result::Result<Vec<_>, PgFailure>>()
            .map_err(Error::from)
    }
}
