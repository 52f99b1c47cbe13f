//! The schema: the `catena_collections` catalog, one table per collection, its indexes, and
//! the checks that keep a collection from being opened with another dimension, metric or
//! embedding model.

use catena_core::{Error, Result};
use deadpool_postgres::GenericClient;

use super::sql::PgFailure;
use super::{DistanceMetric, Index};
use crate::postgres::{quote_ident, validate_table_name};

/// The catalog table: one row per collection.
pub(crate) const CATALOG: &str = "catena_collections";

/// A fixed advisory-lock key serialising migrations (`'catena'` in ASCII).
const MIGRATION_LOCK: i64 = 0x6361_7465_6e61;

/// What a collection was created with (a row of the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CollectionInfo {
    pub(crate) dimensions: usize,
    pub(crate) metric: DistanceMetric,
    pub(crate) embedding_model: Option<String>,
    pub(crate) text_search_config: String,
}

/// Checks a collection (table) name: `[a-z_][a-z0-9_]{0,62}`, and not the catalog.
pub(crate) fn validate_collection_name(name: &str) -> Result<()> {
    validate_table_name(name, "collection")?;
    if name == CATALOG {
        return Err(Error::invalid_config(format!(
            "{CATALOG:?} is reserved for the collection catalog"
        )));
    }
    Ok(())
}

/// Checks a text search configuration name (a `regconfig` such as `simple` or `english`).
pub(crate) fn validate_text_config(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_config(format!(
            "invalid text search configuration {name:?}: use a name such as \"simple\" or \"english\""
        )))
    }
}

pub(crate) fn metric_name(metric: DistanceMetric) -> &'static str {
    match metric {
        DistanceMetric::Cosine => "cosine",
        DistanceMetric::DotProduct => "dot_product",
        DistanceMetric::Euclidean => "euclidean",
    }
}

fn metric_from_name(name: &str) -> Option<DistanceMetric> {
    match name {
        "cosine" => Some(DistanceMetric::Cosine),
        "dot_product" => Some(DistanceMetric::DotProduct),
        "euclidean" => Some(DistanceMetric::Euclidean),
        _ => None,
    }
}

/// The pgvector operator class for the metric's index.
fn opclass(metric: DistanceMetric) -> &'static str {
    match metric {
        DistanceMetric::Cosine => "vector_cosine_ops",
        DistanceMetric::DotProduct => "vector_ip_ops",
        DistanceMetric::Euclidean => "vector_l2_ops",
    }
}

/// A schema-unique index name: a readable prefix of the table name, a hash of the whole
/// name (so long names cannot collide once PostgreSQL truncates them to 63 bytes) and the
/// index's purpose.
pub(crate) fn index_name(table: &str, purpose: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in table.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let prefix: String = table.chars().take(40).collect();
    format!("{prefix}_{hash:08x}_{purpose}")
}

/// The table's `CREATE TABLE` statement.
fn create_table_sql(table: &str, info: &CollectionInfo) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (\
           id text PRIMARY KEY, \
           content text NOT NULL, \
           metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb, \
           embedding vector({dims}) NOT NULL, \
           content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('{cfg}'::regconfig, content)) STORED)",
        t = quote_ident(table),
        dims = info.dimensions,
        // Validated as [a-z_]+ by `validate_text_config`; DDL cannot take parameters.
        cfg = info.text_search_config,
    )
}

/// The `CREATE INDEX` statement for an approximate-nearest-neighbour index.
pub(crate) fn ann_index_sql(table: &str, metric: DistanceMetric, index: &Index) -> Option<String> {
    let t = quote_ident(table);
    match index {
        Index::None => None,
        Index::Hnsw { m, ef_construction } => Some(format!(
            "CREATE INDEX IF NOT EXISTS {n} ON {t} USING hnsw (embedding {ops}) \
             WITH (m = {m}, ef_construction = {ef_construction})",
            n = quote_ident(&index_name(table, "hnsw")),
            ops = opclass(metric),
        )),
        Index::IvfFlat { lists } => Some(format!(
            "CREATE INDEX IF NOT EXISTS {n} ON {t} USING ivfflat (embedding {ops}) \
             WITH (lists = {lists})",
            n = quote_ident(&index_name(table, "ivfflat")),
            ops = opclass(metric),
        )),
    }
}

/// `DROP INDEX` statements for every ANN index this crate manages on `table`.
pub(crate) fn drop_ann_indexes_sql(table: &str) -> [String; 2] {
    ["hnsw", "ivfflat"].map(|p| {
        format!(
            "DROP INDEX IF EXISTS {}",
            quote_ident(&index_name(table, p))
        )
    })
}

/// Reads the collection's catalog row, if the catalog and the row exist.
pub(crate) async fn read_info(
    client: &impl GenericClient,
    name: &str,
) -> std::result::Result<Option<CollectionInfo>, PgFailure> {
    let catalog_exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&CATALOG])
        .await?
        .try_get(0)?;
    if !catalog_exists {
        return Ok(None);
    }
    let sql = format!(
        "SELECT dimensions, metric, embedding_model, text_search_config FROM {} WHERE name = $1",
        quote_ident(CATALOG)
    );
    let Some(row) = client.query_opt(&sql, &[&name]).await? else {
        return Ok(None);
    };
    let dims: i32 = row.try_get(0)?;
    let metric: String = row.try_get(1)?;
    let info = CollectionInfo {
        dimensions: usize::try_from(dims).map_err(|_| {
            Error::invalid_config(format!("catalog row for {name:?} has dimensions {dims}"))
        })?,
        metric: metric_from_name(&metric).ok_or_else(|| {
            Error::invalid_config(format!(
                "catalog row for {name:?} has unknown metric {metric:?}"
            ))
        })?,
        embedding_model: row.try_get(2)?,
        text_search_config: row.try_get(3)?,
    };
    Ok(Some(info))
}

/// Whether the collection's table exists.
pub(crate) async fn table_exists(
    client: &impl GenericClient,
    table: &str,
) -> std::result::Result<bool, PgFailure> {
    let quoted = quote_ident(table);
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])
        .await?
        .try_get(0)?)
}

/// Compares what is stored with what the caller asked for. `want.embedding_model = None`
/// accepts any model.
pub(crate) fn check_compatible(
    name: &str,
    have: &CollectionInfo,
    want: &CollectionInfo,
) -> Result<()> {
    let created = match &have.embedding_model {
        Some(m) => format!(" (created for embedding model {m:?})"),
        None => String::new(),
    };
    if have.dimensions != want.dimensions {
        return Err(Error::invalid_config(format!(
            "collection {name:?} holds {}-dimensional vectors{created}, but {} dimensions were \
             asked for; use another collection or re-embed into a new one",
            have.dimensions, want.dimensions
        )));
    }
    if have.metric != want.metric {
        return Err(Error::invalid_config(format!(
            "collection {name:?} was created with the {} metric, not {}; its scores and \
             indexes depend on it",
            metric_name(have.metric),
            metric_name(want.metric)
        )));
    }
    if let (Some(h), Some(w)) = (&have.embedding_model, &want.embedding_model) {
        if h != w {
            return Err(Error::invalid_config(format!(
                "collection {name:?} holds vectors from embedding model {h:?}, not {w:?}; \
                 vectors from different models are not comparable"
            )));
        }
    }
    if have.text_search_config != want.text_search_config {
        return Err(Error::invalid_config(format!(
            "collection {name:?} indexes text with configuration {:?}, not {:?}",
            have.text_search_config, want.text_search_config
        )));
    }
    Ok(())
}

/// Creates (or checks) everything the collection needs, in one transaction under an
/// advisory lock so concurrent migrations cannot race: the `vector` extension when missing,
/// the catalog and its row, the table, the GIN indexes on `metadata` and on the text search
/// vector, and the configured ANN index. Idempotent.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Client,
    name: &str,
    want: &CollectionInfo,
    index: &Index,
) -> std::result::Result<CollectionInfo, PgFailure> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let has_vector = tx
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
        .await?
        .is_some();
    if !has_vector {
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .await?;
    }
    // The text search configuration must exist before it is baked into a generated column.
    tx.query_one(
        "SELECT $1::text::regconfig::oid",
        &[&want.text_search_config],
    )
    .await
    .map_err(|e| match e.code() {
        Some(_) => PgFailure::Catena(Error::invalid_config(format!(
            "text search configuration {:?} does not exist on this server",
            want.text_search_config
        ))),
        None => PgFailure::Pg(e),
    })?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (\
           name text PRIMARY KEY, \
           dimensions integer NOT NULL, \
           metric text NOT NULL, \
           embedding_model text, \
           text_search_config text NOT NULL, \
           created_at timestamptz NOT NULL DEFAULT now())",
        quote_ident(CATALOG)
    ))
    .await?;

    let table_exists = table_exists(&tx, name).await?;
    let info = match read_info(&tx, name).await? {
        Some(have) if table_exists => {
            check_compatible(name, &have, want)?;
            if have.embedding_model.is_none() && want.embedding_model.is_some() {
                let sql = format!(
                    "UPDATE {} SET embedding_model = $2 WHERE name = $1",
                    quote_ident(CATALOG)
                );
                tx.execute(&sql, &[&name, &want.embedding_model]).await?;
                CollectionInfo {
                    embedding_model: want.embedding_model.clone(),
                    ..have
                }
            } else {
                have
            }
        }
        _ if table_exists => {
            return Err(PgFailure::Catena(Error::invalid_config(format!(
                "table {name:?} exists but is not a Catena collection (no row in {CATALOG}); \
                 choose another collection name"
            ))));
        }
        _ => {
            // A catalog row without its table (dropped by hand) is replaced.
            let dims = i32::try_from(want.dimensions)
                .map_err(|_| Error::invalid_config("dimensions out of range"))?;
            let sql = format!(
                "INSERT INTO {} (name, dimensions, metric, embedding_model, text_search_config) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET dimensions = EXCLUDED.dimensions, \
                 metric = EXCLUDED.metric, embedding_model = EXCLUDED.embedding_model, \
                 text_search_config = EXCLUDED.text_search_config, created_at = now()",
                quote_ident(CATALOG)
            );
            tx.execute(
                &sql,
                &[
                    &name,
                    &dims,
                    &metric_name(want.metric),
                    &want.embedding_model,
                    &want.text_search_config,
                ],
            )
            .await?;
            tx.batch_execute(&create_table_sql(name, want)).await?;
            want.clone()
        }
    };
    let t = quote_ident(name);
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS {meta} ON {t} USING gin (metadata jsonb_path_ops); \
         CREATE INDEX IF NOT EXISTS {tsv} ON {t} USING gin (content_tsv)",
        meta = quote_ident(&index_name(name, "metadata")),
        tsv = quote_ident(&index_name(name, "tsv")),
    ))
    .await?;
    if let Some(sql) = ann_index_sql(name, info.metric, index) {
        tx.batch_execute(&sql).await?;
    }
    tx.commit().await?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        for ok in ["docs", "_x", "a1_b2", &"a".repeat(63)] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "Docs",
            "a-b",
            "a b",
            "docs\"; DROP TABLE x; --",
            "x') OR 1=1 --",
            &"a".repeat(64),
            CATALOG,
        ] {
            assert!(
                matches!(validate_collection_name(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn index_names_are_short_and_distinct() {
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        let a = index_name(&long_a, "metadata");
        assert!(a.len() <= 63);
        assert_ne!(a, index_name(&long_b, "metadata"));
        assert_ne!(index_name("docs", "hnsw"), index_name("docs", "ivfflat"));
    }

    #[test]
    fn ann_index_ddl() {
        let sql = ann_index_sql(
            "docs",
            DistanceMetric::Cosine,
            &Index::Hnsw {
                m: 16,
                ef_construction: 64,
            },
        )
        .unwrap();
        assert!(sql.contains("USING hnsw (embedding vector_cosine_ops)"));
        assert!(sql.contains("m = 16, ef_construction = 64"));
        let sql = ann_index_sql(
            "docs",
            DistanceMetric::Euclidean,
            &Index::IvfFlat { lists: 10 },
        )
        .unwrap();
        assert!(sql.contains("USING ivfflat (embedding vector_l2_ops) WITH (lists = 10)"));
        assert!(ann_index_sql("docs", DistanceMetric::DotProduct, &Index::None).is_none());
    }

    #[test]
    fn mismatches_are_explained() {
        let have = CollectionInfo {
            dimensions: 3,
            metric: DistanceMetric::Cosine,
            embedding_model: Some("m1".into()),
            text_search_config: "simple".into(),
        };
        let mut want = have.clone();
        assert!(check_compatible("c", &have, &want).is_ok());
        want.embedding_model = None;
        assert!(check_compatible("c", &have, &want).is_ok());
        want.dimensions = 4;
        let e = check_compatible("c", &have, &want).unwrap_err().to_string();
        assert!(
            e.contains("3-dimensional") && e.contains("4 dimensions"),
            "{e}"
        );
        want.dimensions = 3;
        want.metric = DistanceMetric::Euclidean;
        let e = check_compatible("c", &have, &want).unwrap_err().to_string();
        assert!(e.contains("cosine") && e.contains("euclidean"), "{e}");
        want.metric = DistanceMetric::Cosine;
        want.embedding_model = Some("m2".into());
        let e = check_compatible("c", &have, &want).unwrap_err().to_string();
        assert!(e.contains("m1") && e.contains("m2"), "{e}");
    }
}
