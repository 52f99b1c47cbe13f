//! The collection lifecycle: check an existing collection, or create it, and ensure the
//! payload indexes.

use std::collections::HashMap;

use catena_core::{Error, ProviderError, ProviderErrorKind, Result};
use qdrant_client::qdrant::{self as q, payload_index_params::IndexParams, vectors_config::Config};

use super::error::{convert, RunQdrant};
use super::store::Inner;
use super::{DENSE_VECTOR, METADATA_FIELD, SPARSE_VECTOR};
use crate::DistanceMetric;

/// What the store learnt about its collection.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) dims: usize,
    /// The dense vector's name; `None` for a collection with one unnamed vector.
    pub(super) dense: Option<String>,
}

impl Inner {
    fn distance(&self) -> q::Distance {
        match self.metric {
            DistanceMetric::Cosine => q::Distance::Cosine,
            DistanceMetric::DotProduct => q::Distance::Dot,
            DistanceMetric::Euclidean => q::Distance::Euclid,
        }
    }

    async fn exists(&self) -> std::result::Result<bool, qdrant_client::QdrantError> {
        let request = q::CollectionExistsRequest {
            collection_name: self.collection.clone(),
        };
        self.retry
            .run_qdrant("collection_exists", || {
                self.client.collection_exists(request.clone())
            })
            .await
    }

    pub(super) async fn init(&self) -> Result<Layout> {
        let name = &self.collection;
        let exists = self
            .exists()
            .await
            .map_err(|e| convert(e, "checking the collection"))?;
        let layout = if exists {
            self.check_existing().await?
        } else {
            if !self.create_if_missing {
                return Err(Error::invalid_config(format!(
                    "qdrant collection `{name}` does not exist and create_if_missing is off"
                )));
            }
            let dims = self.dimensions.ok_or_else(|| {
                Error::invalid_config(format!(
                    "qdrant collection `{name}` does not exist: set `dimensions(n)` so the \
                     store can create it"
                ))
            })?;
            let request = self.create_request(dims);
            match self
                .retry
                .run_qdrant("create_collection", || {
                    self.client.create_collection(request.clone())
                })
                .await
            {
                Ok(_) => {
                    tracing::info!(collection = %name, dims, "qdrant: created the collection");
                    Layout {
                        dims,
                        dense: Some(DENSE_VECTOR.to_owned()),
                    }
                }
                // Someone else created it meanwhile: check theirs.
                Err(e) => match self.exists().await {
                    Ok(true) => self.check_existing().await?,
                    _ => return Err(convert(e, "creating the collection")),
                },
            }
        };
        self.create_indexes().await?;
        Ok(layout)
    }

    fn create_request(&self, dims: usize) -> q::CreateCollection {
        let dense = q::VectorParams {
            size: dims as u64,
            distance: self.distance() as i32,
            ..Default::default()
        };
        let sparse = self.hybrid.then(|| q::SparseVectorConfig {
            map: HashMap::from([(
                SPARSE_VECTOR.to_owned(),
                q::SparseVectorParams {
                    index: None,
                    modifier: Some(q::Modifier::Idf as i32),
                },
            )]),
        });
        let hnsw = (self.hnsw_m.is_some() || self.hnsw_ef_construct.is_some()).then(|| {
            q::HnswConfigDiff {
                m: self.hnsw_m,
                ef_construct: self.hnsw_ef_construct,
                ..Default::default()
            }
        });
        q::CreateCollection {
            collection_name: self.collection.clone(),
            vectors_config: Some(q::VectorsConfig {
                config: Some(Config::ParamsMap(q::VectorParamsMap {
                    map: HashMap::from([(DENSE_VECTOR.to_owned(), dense)]),
                })),
            }),
            sparse_vectors_config: sparse,
            hnsw_config: hnsw,
            ..Default::default()
        }
    }

    async fn check_existing(&self) -> Result<Layout> {
        let name = &self.collection;
        let request = q::GetCollectionInfoRequest {
            collection_name: name.clone(),
        };
        let info = self
            .retry
            .run_qdrant("collection_info", || {
                self.client.collection_info(request.clone())
            })
            .await
            .map_err(|e| convert(e, "reading the collection"))?;
        let malformed = || {
            Error::from(
                ProviderError::new(
                    ProviderErrorKind::MalformedResponse,
                    format!("collection `{name}`: the info has no vector configuration"),
                )
                .with_provider("qdrant"),
            )
        };
        let params = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .ok_or_else(malformed)?;
        let (dense, vp) = match params.vectors_config.and_then(|v| v.config) {
            Some(Config::Params(p)) => (None, p),
            Some(Config::ParamsMap(m)) => match m.map.get(DENSE_VECTOR) {
                Some(p) => (Some(DENSE_VECTOR.to_owned()), *p),
                None => {
                    let mut names: Vec<_> = m.map.keys().cloned().collect();
                    names.sort();
                    return Err(Error::invalid_config(format!(
                        "qdrant collection `{name}` has no dense vector named \
                         `{DENSE_VECTOR}` (it has {names:?})"
                    )));
                }
            },
            None => return Err(malformed()),
        };
        let size = vp.size as usize;
        if let Some(d) = self.dimensions {
            if d != size {
                return Err(Error::invalid_config(format!(
                    "qdrant collection `{name}` holds {size}-dimensional vectors but this store \
                     is configured for {d}; use another collection or the matching embedder"
                )));
            }
        }
        if vp.distance != self.distance() as i32 {
            let theirs = q::Distance::try_from(vp.distance).map_or_else(
                |_| format!("#{}", vp.distance),
                |d| d.as_str_name().to_owned(),
            );
            return Err(Error::invalid_config(format!(
                "qdrant collection `{name}` uses {theirs} distance but this store is configured \
                 for {}",
                self.distance().as_str_name()
            )));
        }
        if self.hybrid {
            let sparse = params
                .sparse_vectors_config
                .as_ref()
                .and_then(|s| s.map.get(SPARSE_VECTOR));
            if dense.is_none() || sparse.is_none() {
                return Err(Error::invalid_config(format!(
                    "qdrant collection `{name}` has no sparse vector named `{SPARSE_VECTOR}`: \
                     hybrid search needs a collection created with `hybrid(true)`"
                )));
            }
            if sparse.and_then(|s| s.modifier) != Some(q::Modifier::Idf as i32) {
                tracing::warn!(collection = %name, "qdrant: the sparse vector has no IDF modifier; hybrid scores ignore term rarity");
            }
        }
        Ok(Layout { dims: size, dense })
    }

    async fn create_indexes(&self) -> Result<()> {
        let mut indexes: Vec<(String, q::FieldType, Option<q::PayloadIndexParams>)> = Vec::new();
        if let Some(key) = &self.tenant_key {
            let params = q::KeywordIndexParams {
                is_tenant: Some(true),
                ..Default::default()
            };
            indexes.push((
                key.clone(),
                q::FieldType::Keyword,
                Some(q::PayloadIndexParams {
                    index_params: Some(IndexParams::KeywordIndexParams(params)),
                }),
            ));
        }
        for (key, kind) in &self.payload_indexes {
            indexes.push((format!("{METADATA_FIELD}.{key}"), kind.field_type(), None));
        }
        for (field_name, field_type, params) in indexes {
            let request = q::CreateFieldIndexCollection {
                collection_name: self.collection.clone(),
                wait: Some(true),
                field_name,
                field_type: Some(field_type as i32),
                field_index_params: params,
                ..Default::default()
            };
            self.retry
                .run_qdrant("create_field_index", || {
                    self.client.create_field_index(request.clone())
                })
                .await
                .map_err(|e| convert(e, "creating a payload index"))?;
        }
        Ok(())
    }
}
