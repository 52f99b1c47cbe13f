//! [`CrossEncoderReranker`]: a BERT cross-encoder (query and document read together, one
//! relevance logit per pair) run in process.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};
use tokio::sync::oneshot;

use catena_core::{sort_rerank_results, Document, Error, RerankResult, Reranker, Result};

use super::worker::WorkerPool;
use super::{inference_error, load_error, read_file};

/// A cross-encoder reranker: a BERT-family model with a sequence-classification head
/// (`BertForSequenceClassification` with one label, as the `cross-encoder/ms-marco-*`
/// models), loaded from a local directory and run on the CPU with candle.
///
/// The directory holds what a transformers / sentence-transformers `CrossEncoder` export
/// has: `config.json` (`model_type` `bert`, one label), `tokenizer.json` (a pair template
/// putting the document in token type 1) and `model.safetensors` (`bert.*`, `bert.pooler.*`,
/// `classifier.*`). Each (query, document) pair is tokenized as one sequence,
/// `[CLS] query [SEP] document [SEP]`, cut longest-first to the model's maximum length (as
/// transformers does with `truncation=True`); the score is the classifier's logit on the
/// tanh-pooled `[CLS]` vector, higher is more relevant. With
/// [`sigmoid(true)`](CrossEncoderRerankerBuilder::sigmoid), or when the config's
/// `sentence_transformers.activation_fn` is a sigmoid, it is squashed into (0, 1); the
/// ranking is the same either way.
///
/// No package on PyPI ships cross-encoder weights, so `scripts/models.sh` fetches none: put
/// an exported model (for instance `cross-encoder/ms-marco-MiniLM-L6-v2`, 91 MB) in a
/// directory and name it in `CATENA_RERANK_MODEL`.
///
/// ```no_run
/// use catena_core::{Document, Reranker};
/// use catena_llms::local::CrossEncoderReranker;
///
/// # async fn run() -> catena_core::Result<()> {
/// let reranker = CrossEncoderReranker::from_dir("/models/ms-marco-MiniLM-L6-v2")?;
/// let docs = [
///     Document::new("Berlin had a population of 3,520,031 registered inhabitants."),
///     Document::new("Berlin is well known for its museums."),
/// ];
/// let top = reranker.rerank("How many people live in Berlin?", &docs, 1).await?;
/// assert_eq!(top[0].index, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CrossEncoderReranker {
    inner: Arc<Inner>,
    pool: Arc<WorkerPool<()>>,
}

struct Inner {
    model: BertModel,
    pooler: Linear,
    classifier: Linear,
    /// Truncates pairs longest-first at `max_length`, no padding.
    tokenizer: Tokenizer,
    name: String,
    max_length: usize,
    batch_size: usize,
    sigmoid: bool,
    pad_id: u32,
}

impl std::fmt::Debug for CrossEncoderReranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossEncoderReranker")
            .field("model", &self.inner.name)
            .field("max_length", &self.inner.max_length)
            .field("batch_size", &self.inner.batch_size)
            .field("sigmoid", &self.inner.sigmoid)
            .field("workers", &self.pool.workers())
            .finish()
    }
}

/// Configures a [`CrossEncoderReranker`]; see [`CrossEncoderReranker::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct CrossEncoderRerankerBuilder {
    dir: PathBuf,
    batch_size: usize,
    max_length: Option<usize>,
    sigmoid: Option<bool>,
    workers: usize,
    queue_capacity: usize,
}

/// What `config.json` says beyond candle's BERT config.
#[derive(Deserialize)]
struct HeadConfig {
    model_type: Option<String>,
    hidden_size: usize,
    max_position_embeddings: Option<usize>,
    pad_token_id: Option<u32>,
    num_labels: Option<usize>,
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    sentence_transformers: Option<SentenceTransformersConfig>,
}

#[derive(Deserialize)]
struct SentenceTransformersConfig {
    activation_fn: Option<String>,
}

impl CrossEncoderRerankerBuilder {
    /// Pairs per forward pass (default 16). Pairs are sorted by length before batching so
    /// batches pad little; scores keep the input order.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Lowers the maximum pair length (in tokens, special tokens included) below the
    /// model's `max_position_embeddings` (never above it). Default: the model's.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n.max(8));
        self
    }

    /// Squashes scores into (0, 1) with a sigmoid. Default: as the config's
    /// `sentence_transformers.activation_fn` says, else raw logits.
    pub fn sigmoid(mut self, on: bool) -> Self {
        self.sigmoid = Some(on);
        self
    }

    /// Worker threads running forward passes (default 1; candle parallelises each pass).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Requests that may wait for a worker before new ones fail as busy (default 64).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Loads the model.
    ///
    /// # Errors
    /// [`Error::Io`] for missing files; [`Error::InvalidConfig`] for a model that is not a
    /// BERT cross-encoder with one label, or files that do not load.
    pub fn build(self) -> Result<CrossEncoderReranker> {
        super::warn_if_unoptimised();
        let dir = &self.dir;
        let config_bytes = read_file(&dir.join("config.json"))?;
        let head: HeadConfig =
            serde_json::from_slice(&config_bytes).map_err(|e| load_error("config.json", e))?;
        if let Some(kind) = head.model_type.as_deref().filter(|k| *k != "bert") {
            return Err(Error::invalid_config(format!(
                "{}: model_type `{kind}` is not supported; the cross-encoder must be BERT-family (model_type `bert`)",
                dir.display()
            )));
        }
        let labels = head
            .num_labels
            .or_else(|| head.id2label.as_ref().map(serde_json::Map::len))
            .unwrap_or(1);
        if labels != 1 {
            return Err(Error::invalid_config(format!(
                "{}: the classifier has {labels} labels; a reranker needs one relevance score (one label)",
                dir.display()
            )));
        }
        let config: BertConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| load_error("config.json (expected a BERT config)", e))?;
        let model_max = head.max_position_embeddings.unwrap_or(512);
        let max_length = self.max_length.map_or(model_max, |n| n.min(model_max));
        let sigmoid = self.sigmoid.unwrap_or_else(|| {
            head.sentence_transformers
                .and_then(|s| s.activation_fn)
                .is_some_and(|f| f.ends_with("Sigmoid"))
        });

        let tokenizer_bytes = read_file(&dir.join("tokenizer.json"))?;
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_bytes).map_err(|e| load_error("tokenizer.json", e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_error("tokenizer.json", e))?;

        let weights = read_file(&dir.join("model.safetensors"))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| load_error("model.safetensors", e))?;
        // transformers checkpoints prefix the encoder with `bert.`; bare exports do not.
        let base = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb.clone()
        };
        let model = BertModel::load(base.clone(), &config)
            .map_err(|e| load_error("the BERT weights", e))?;
        let hidden = head.hidden_size;
        let pooler = candle_nn::linear(hidden, hidden, base.pp("pooler.dense"))
            .map_err(|e| load_error("the pooler (bert.pooler.dense)", e))?;
        let classifier = candle_nn::linear(hidden, 1, vb.pp("classifier"))
            .map_err(|e| load_error("the classifier head (classifier.weight, one label)", e))?;

        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cross-encoder".to_owned());
        let pool = WorkerPool::start("catena-rerank", vec![(); self.workers], self.queue_capacity)?;
        Ok(CrossEncoderReranker {
            inner: Arc::new(Inner {
                model,
                pooler,
                classifier,
                tokenizer,
                name,
                max_length,
                batch_size: self.batch_size,
                sigmoid,
                pad_id: head.pad_token_id.unwrap_or(0),
            }),
            pool: Arc::new(pool),
        })
    }
}

impl CrossEncoderReranker {
    /// Loads the cross-encoder in `dir` (`config.json`, `tokenizer.json`,
    /// `model.safetensors`) with default settings.
    ///
    /// # Errors
    /// As for [`CrossEncoderRerankerBuilder::build`].
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(dir).build()
    }

    /// A builder for the cross-encoder in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> CrossEncoderRerankerBuilder {
        CrossEncoderRerankerBuilder {
            dir: dir.into(),
            batch_size: 16,
            max_length: None,
            sigmoid: None,
            workers: 1,
            queue_capacity: 64,
        }
    }

    /// The model's name (its directory name).
    pub fn model_name(&self) -> &str {
        &self.inner.name
    }

    /// The most tokens of a (query, document) pair the model reads, special tokens
    /// included; longer pairs are cut longest-first.
    pub fn max_length(&self) -> usize {
        self.inner.max_length
    }

    /// The score of each of `documents` against `query`, in input order.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a text cannot be tokenized; a retryable busy error when
    /// the queue is full; an inference error if the forward pass fails.
    pub async fn score(&self, query: &str, documents: &[String]) -> Result<Vec<f32>> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let query = query.to_owned();
        let documents = documents.to_vec();
        self.pool.submit(Box::new(move |_: &mut ()| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(inner.score_blocking(&query, &documents));
        }))?;
        rx.await
            .map_err(|_| inference_error("the reranking worker stopped"))?
    }
}

/// One tokenized pair.
struct Pair {
    ids: Vec<u32>,
    types: Vec<u32>,
}

impl Inner {
    fn score_blocking(&self, query: &str, documents: &[String]) -> Result<Vec<f32>> {
        let mut pairs = Vec::with_capacity(documents.len());
        let mut truncated = 0usize;
        for (i, doc) in documents.iter().enumerate() {
            let enc = self
                .tokenizer
                .encode((query, doc.as_str()), true)
                .map_err(|e| Error::invalid_input(format!("document {i}: cannot tokenize: {e}")))?;
            if !enc.get_overflowing().is_empty() {
                truncated += 1;
            }
            pairs.push(Pair {
                ids: enc.get_ids().to_vec(),
                types: enc.get_type_ids().to_vec(),
            });
        }
        if truncated > 0 {
            tracing::debug!(
                model = %self.name,
                count = truncated,
                max_length = self.max_length,
                "scored the first max_length tokens of over-long pairs"
            );
        }
        // Longest first, so each batch pads to a similar length; scores go back in order.
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].ids.len()));
        let mut out = vec![f32::NAN; pairs.len()];
        for batch in order.chunks(self.batch_size) {
            let rows: Vec<&Pair> = batch.iter().map(|&i| &pairs[i]).collect();
            let scores = self.forward(&rows).map_err(inference_error)?;
            if scores.len() != batch.len() {
                return Err(inference_error("a batch produced too few scores"));
            }
            for (&i, s) in batch.iter().zip(scores) {
                out[i] = if self.sigmoid {
                    1.0 / (1.0 + (-s).exp())
                } else {
                    s
                };
            }
        }
        Ok(out)
    }

    fn forward(&self, batch: &[&Pair]) -> candle_core::Result<Vec<f32>> {
        let len = batch.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        let n = batch.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for pair in batch {
            let pad = len - pair.ids.len();
            ids.extend_from_slice(&pair.ids);
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            types.extend_from_slice(&pair.types);
            types.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(1u32, pair.ids.len()));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let device = Device::Cpu;
        let input_ids = Tensor::from_vec(ids, (n, len), &device)?;
        let token_types = Tensor::from_vec(types, (n, len), &device)?;
        let attention = Tensor::from_vec(mask, (n, len), &device)?;
        let hidden = self
            .model
            .forward(&input_ids, &token_types, Some(&attention))?; // (n, len, h)
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?; // (n, h)
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        let logits = self.classifier.forward(&pooled)?; // (n, 1)
        logits.squeeze(1)?.to_vec1::<f32>()
    }
}

#[async_trait]
impl Reranker for CrossEncoderReranker {
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        if documents.is_empty() || top_n == 0 {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = documents.iter().map(|d| d.content.clone()).collect();
        let scores = self.score(query, &texts).await?;
        let mut results: Vec<RerankResult> = scores
            .into_iter()
            .enumerate()
            .map(|(i, s)| RerankResult::new(i, s))
            .collect();
        sort_rerank_results(&mut results);
        results.truncate(top_n);
        Ok(results)
    }
}
