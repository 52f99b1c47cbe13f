//! [`LocalChatModel`]: a GGUF chat model (llama or qwen2 architecture) run in process.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::{quantized_llama, quantized_qwen2};
use futures::StreamExt;
use serde_json::Value;
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart,
    Error, FinishReason, Message, ModelInfo, ProviderError, ProviderErrorKind, ResponseFormat,
    Result, Role, ToolChoice, Usage,
};

use super::llama::LlamaModel;
use super::template::{ChatTemplate, Segment, TemplateMessage, CHATML};
use super::worker::WorkerPool;
use super::{inference_error, load_error, PROVIDER};

/// Whether to re-quantize weights at load time.
///
/// candle has fast CPU kernels for Q8_0 and the k-quants but not for Q4_0/Q4_1/Q5_0/Q5_1;
/// converting those to Q8_0 once at load (well under a second for a 135M model) makes decoding
/// about 2–3× faster for about twice the weight memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Requantize {
    /// Convert Q4_0, Q4_1, Q5_0 and Q5_1 tensors to Q8_0 (the default).
    #[default]
    Auto,
    /// Use the file's tensors as they are.
    Off,
}

/// A chat model from a GGUF file, run on the CPU with candle.
///
/// Loads llama-architecture files (Llama, SmolLM, Mistral-style) and qwen2 files. The prompt is
/// rendered with the chat template in the file's metadata (`tokenizer.chat_template`; ChatML when
/// absent) and tokenized with the tokenizer in the metadata. Generation:
///
/// - greedy unless the request sets `temperature > 0`; `top_p` and `seed` as requested (the same
///   seed and settings give the same text);
/// - stops at the end-of-turn token, a stop sequence (excluded from the text) or `max_tokens`
///   (the builder's default when the request sets none), and always within the context window;
///   a prompt that does not fit fails with
///   [`ProviderErrorKind::ContextLengthExceeded`];
/// - streams text deltas; dropping the stream stops the generation at the next token.
///
/// Requests run on dedicated worker threads (see the [module docs](super)), never on the async
/// runtime.
///
/// ```no_run
/// use catena_core::{ChatModel, ChatRequest, Message};
/// use catena_llms::local::LocalChatModel;
///
/// # async fn run() -> catena_core::Result<()> {
/// let model = LocalChatModel::builder("/path/to/SmolLM2-135M-Instruct.Q4_1.gguf")
///     .default_max_tokens(128)
///     .build()?;
/// let reply = model
///     .generate(ChatRequest::new(vec![Message::user("What is the capital of France?")]))
///     .await?;
/// println!("{}", reply.message.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalChatModel {
    inner: Arc<Inner>,
    pool: Arc<WorkerPool<Engine>>,
}

struct Inner {
    name: String,
    tokenizer: Tokenizer,
    /// The same tokenizer with special-token matching off: for message contents, where
    /// `<|im_start|>` is text, never a control token.
    content_tokenizer: Tokenizer,
    template: ChatTemplate,
    eos_ids: HashSet<u32>,
    context_length: usize,
    default_max_tokens: usize,
    repeat_penalty: f32,
    repeat_last_n: usize,
}

impl std::fmt::Debug for LocalChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChatModel")
            .field("model", &self.inner.name)
            .field("context_length", &self.inner.context_length)
            .field("workers", &self.pool.workers())
            .field("queue_capacity", &self.pool.capacity())
            .finish()
    }
}

/// Configures a [`LocalChatModel`]; see [`LocalChatModel::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalChatModelBuilder {
    path: PathBuf,
    requantize: Requantize,
    workers: usize,
    queue_capacity: usize,
    default_max_tokens: usize,
    repeat_penalty: f32,
    repeat_last_n: usize,
    name: Option<String>,
}

enum Engine {
    /// Catena's llama decoder (see `llama.rs`).
    Fast(Box<LlamaModel>),
    Llama(Box<quantized_llama::ModelWeights>),
    Qwen2(Box<quantized_qwen2::ModelWeights>),
}

impl Engine {
    fn clear(&mut self) {
        match self {
            Engine::Fast(m) => m.clear(),
            Engine::Llama(m) => m.clear_kv_cache(),
            Engine::Qwen2(m) => m.clear_kv_cache(),
        }
    }

    fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let logits = match self {
            Engine::Fast(m) => {
                let logits = m.forward(&x.squeeze(0)?.to_vec1::<u32>()?, pos)?;
                let len = logits.len();
                return Tensor::from_vec(logits, len, &Device::Cpu);
            }
            Engine::Llama(m) => m.forward(x, pos)?,
            Engine::Qwen2(m) => m.forward(x, pos)?,
        };
        logits.squeeze(0)
    }
}

/// What the file says about the model, read before the weights.
struct Header {
    arch: String,
    context_length: usize,
    tokenizer: Tokenizer,
    template: String,
    eos_ids: HashSet<u32>,
    general_name: Option<String>,
}

fn read_header(content: &gguf_file::Content) -> Result<Header> {
    let md = &content.metadata;
    let arch = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| Error::invalid_config("the GGUF file names no general.architecture"))?;
    if arch != "llama" && arch != "qwen2" {
        return Err(Error::invalid_config(format!(
            "unsupported GGUF architecture `{arch}` (supported: llama, qwen2)"
        )));
    }
    let file_context = md
        .get(&format!("{arch}.context_length"))
        .and_then(|v| v.to_u32().ok())
        .map(|n| n as usize);
    // candle's llama precomputes rotary tables for MAX_SEQ_LEN positions only.
    let context_length = match arch.as_str() {
        "llama" => file_context
            .unwrap_or(quantized_llama::MAX_SEQ_LEN)
            .min(quantized_llama::MAX_SEQ_LEN),
        _ => file_context
            .ok_or_else(|| Error::invalid_config("the GGUF file has no qwen2.context_length"))?,
    };
    let tokenizer = super::tokenizer::from_gguf(content)?;
    let template = md
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| CHATML.to_owned());
    let mut eos_ids = HashSet::new();
    if let Some(id) = md
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok())
    {
        eos_ids.insert(id);
    }
    for end in [
        "<|im_end|>",
        "<|endoftext|>",
        "<|eot_id|>",
        "<|end|>",
        "</s>",
    ] {
        if let Some(id) = tokenizer.token_to_id(end) {
            eos_ids.insert(id);
        }
    }
    let general_name = md
        .get("general.name")
        .and_then(|v| v.to_string().ok())
        .cloned();
    Ok(Header {
        arch,
        context_length,
        tokenizer,
        template,
        eos_ids,
        general_name,
    })
}

/// The file types [`Requantize::Auto`] converts to Q8_0.
pub(super) fn needs_requantize(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    )
}

/// Loads the weights, re-quantizing through an in-memory GGUF when asked.
fn load_engine<R: Read + Seek>(
    arch: &str,
    content: gguf_file::Content,
    reader: &mut R,
    requantize: Requantize,
    context_length: usize,
) -> Result<Engine> {
    let device = Device::Cpu;
    if arch == "llama" && std::env::var("CATENA_CANDLE_LLAMA").as_deref() != Ok("1") {
        if let Some(model) = LlamaModel::load(
            &content,
            reader,
            requantize == Requantize::Auto,
            context_length,
        )
        .map_err(|e| load_error("the llama weights", e))?
        {
            return Ok(Engine::Fast(Box::new(model)));
        }
    }
    let convert = requantize == Requantize::Auto
        && content
            .tensor_infos
            .values()
            .any(|t| needs_requantize(t.ggml_dtype));
    if convert {
        let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(content.tensor_infos.len());
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let t = content
                .tensor(reader, name, &device)
                .map_err(|e| load_error(&format!("tensor {name}"), e))?;
            let block_ok = t.shape().dims().last().is_some_and(|d| d % 32 == 0);
            let t = if needs_requantize(t.dtype()) && block_ok {
                let dense = t
                    .dequantize(&device)
                    .map_err(|e| load_error(&format!("tensor {name}"), e))?;
                QTensor::quantize(&dense, GgmlDType::Q8_0)
                    .map_err(|e| load_error(&format!("tensor {name}"), e))?
            } else {
                t
            };
            tensors.push((name.clone(), t));
        }
        let metadata: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let tensor_refs: Vec<(&str, &QTensor)> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut buffer = Cursor::new(Vec::new());
        gguf_file::write(&mut buffer, &metadata, &tensor_refs)
            .map_err(|e| load_error("the re-quantized model", e))?;
        drop(tensors);
        buffer.set_position(0);
        let content = gguf_file::Content::read(&mut buffer)
            .map_err(|e| load_error("the re-quantized model", e))?;
        return load_engine(arch, content, &mut buffer, Requantize::Off, context_length);
    }
    let engine = match arch {
        "llama" => Engine::Llama(Box::new(
            quantized_llama::ModelWeights::from_gguf(content, reader, &device)
                .map_err(|e| load_error("the llama weights", e))?,
        )),
        _ => Engine::Qwen2(Box::new(
            quantized_qwen2::ModelWeights::from_gguf(content, reader, &device)
                .map_err(|e| load_error("the qwen2 weights", e))?,
        )),
    };
    Ok(engine)
}

fn open_gguf(path: &Path) -> Result<(File, gguf_file::Content)> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| load_error(&format!("{} (not a GGUF file?)", path.display()), e))?;
    Ok((file, content))
}

impl LocalChatModelBuilder {
    /// Re-quantization at load time (default [`Requantize::Auto`]).
    pub fn requantize(mut self, requantize: Requantize) -> Self {
        self.requantize = requantize;
        self
    }

    /// Worker threads, each with its own KV cache (default 1). The llama weights are shared
    /// between workers; qwen2 weights are loaded once per worker.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Requests that may wait for a worker before new ones fail as busy (default 16).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// The answer length when a request sets no `max_tokens` (default 512).
    pub fn default_max_tokens(mut self, n: usize) -> Self {
        self.default_max_tokens = n.max(1);
        self
    }

    /// Penalises tokens seen in the last `last_n` tokens (default 1.1 over 64; 1.0 turns it
    /// off). Small models loop without it.
    pub fn repeat_penalty(mut self, penalty: f32, last_n: usize) -> Self {
        self.repeat_penalty = penalty;
        self.repeat_last_n = last_n;
        self
    }

    /// The model name reported in responses (default: the file name without `.gguf`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Loads the model.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::InvalidConfig`] if it is not a GGUF
    /// file of a supported architecture or its tokenizer or template cannot be built.
    pub fn build(self) -> Result<LocalChatModel> {
        super::warn_if_unoptimised();
        let (mut file, content) = open_gguf(&self.path)?;
        let header = read_header(&content)?;
        let bos = token_text(&header.tokenizer, &content, "tokenizer.ggml.bos_token_id");
        let eos = token_text(&header.tokenizer, &content, "tokenizer.ggml.eos_token_id");
        let template = ChatTemplate::new(&header.template, bos, eos)?;
        let first = load_engine(
            &header.arch,
            content,
            &mut file,
            self.requantize,
            header.context_length,
        )?;
        let mut engines = Vec::with_capacity(self.workers);
        for _ in 1..self.workers {
            let engine = match &first {
                Engine::Fast(m) => Engine::Fast(Box::new(m.fork())),
                Engine::Llama(m) => Engine::Llama(m.clone()),
                Engine::Qwen2(_) => {
                    let (mut file, content) = open_gguf(&self.path)?;
                    load_engine(
                        &header.arch,
                        content,
                        &mut file,
                        self.requantize,
                        header.context_length,
                    )?
                }
            };
            engines.push(engine);
        }
        engines.push(first);
        let name = self.name.unwrap_or_else(|| {
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
                .or(header.general_name.clone())
                .unwrap_or_else(|| "local".to_owned())
        });
        let pool = WorkerPool::start("catena-chat", engines, self.queue_capacity)?;
        let mut content_tokenizer = header.tokenizer.clone();
        content_tokenizer.set_encode_special_tokens(true);
        Ok(LocalChatModel {
            inner: Arc::new(Inner {
                name,
                tokenizer: header.tokenizer,
                content_tokenizer,
                template,
                eos_ids: header.eos_ids,
                context_length: header.context_length,
                default_max_tokens: self.default_max_tokens,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: self.repeat_last_n,
            }),
            pool: Arc::new(pool),
        })
    }
}

fn token_text(tokenizer: &Tokenizer, content: &gguf_file::Content, key: &str) -> String {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokenizer.id_to_token(id))
        .unwrap_or_default()
}

/// One generation, as sent to a worker.
struct Job {
    prompt: Vec<u32>,
    max_new: usize,
    limit_is_context: bool,
    seed: u64,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Vec<String>,
    tx: mpsc::Sender<Result<ChatChunk>>,
}

impl LocalChatModel {
    /// Loads the GGUF file at `path` with default settings.
    ///
    /// # Errors
    /// As for [`LocalChatModelBuilder::build`].
    pub fn load(path: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(path).build()
    }

    /// A builder for the GGUF file at `path`.
    pub fn builder(path: impl Into<PathBuf>) -> LocalChatModelBuilder {
        LocalChatModelBuilder {
            path: path.into(),
            requantize: Requantize::Auto,
            workers: 1,
            queue_capacity: 16,
            default_max_tokens: 512,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            name: None,
        }
    }

    /// The context window in tokens (prompt and answer together).
    pub fn context_length(&self) -> usize {
        self.inner.context_length
    }

    /// Renders `request` with the chat template: the exact text the model will read.
    ///
    /// The text alone does not say which `<|im_start|>` is a control token: the model reads
    /// [`prompt_tokens`](Self::prompt_tokens), where text from the messages never is.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for messages the model cannot take (images) or that the template
    /// rejects.
    pub fn render_prompt(&self, request: &ChatRequest) -> Result<String> {
        let messages = prompt_messages(request)?;
        self.inner.template.render(&messages)
    }

    /// Token ids of `text` as the model's tokenizer splits it (no special tokens added; special
    /// tokens written in the text, such as `<|im_start|>`, are recognised).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the tokenizer fails.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid_input(format!("cannot tokenize: {e}")))
    }

    /// The token ids the model reads for `request`: the chat template's own text tokenized with
    /// its control tokens, each message's content tokenized with special-token matching off.
    ///
    /// Special-token text inside a message (`<|im_start|>system` in a question, a retrieved
    /// document or a fetched page) therefore becomes ordinary text tokens and cannot open or close
    /// a turn; only the template frames the conversation.
    ///
    /// # Errors
    /// As for [`render_prompt`](Self::render_prompt), and [`Error::InvalidInput`] if the
    /// tokenizer fails or the template cuts a message's content so that its bounds are lost.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<u32>> {
        let messages = prompt_messages(request)?;
        let mut ids = Vec::new();
        for segment in self.inner.template.render_segments(&messages)? {
            let (tokenizer, text) = match &segment {
                Segment::Template(t) => (&self.inner.tokenizer, t),
                Segment::Content(t) => (&self.inner.content_tokenizer, t),
            };
            let encoding = tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| Error::invalid_input(format!("cannot tokenize: {e}")))?;
            ids.extend_from_slice(encoding.get_ids());
        }
        Ok(ids)
    }

    fn start(&self, request: &ChatRequest) -> Result<mpsc::Receiver<Result<ChatChunk>>> {
        request.validate()?;
        let prompt = self.prompt_tokens(request)?;
        let ctx = self.inner.context_length;
        if prompt.len() >= ctx {
            return Err(ProviderError::new(
                ProviderErrorKind::ContextLengthExceeded,
                format!(
                    "the prompt is {} tokens; {} has a context window of {ctx} tokens",
                    prompt.len(),
                    self.inner.name
                ),
            )
            .with_provider(PROVIDER)
            .into());
        }
        let requested = request
            .max_tokens
            .map(|n| n as usize)
            .unwrap_or(self.inner.default_max_tokens);
        let room = ctx - prompt.len();
        let temperature = request
            .temperature
            .map(f64::from)
            .filter(|t| *t > 1e-7 && t.is_finite());
        let (tx, rx) = mpsc::channel(64);
        let job = Job {
            max_new: requested.min(room),
            limit_is_context: room < requested,
            prompt,
            seed: request.seed.unwrap_or_else(random_seed),
            temperature,
            top_p: request
                .top_p
                .map(f64::from)
                .filter(|p| *p > 0.0 && *p < 1.0),
            stop: request
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            tx,
        };
        let inner = Arc::clone(&self.inner);
        self.pool.submit(Box::new(move |engine: &mut Engine| {
            if job.tx.is_closed() {
                return;
            }
            let tx = job.tx.clone();
            if let Err(e) = inner.run(engine, job) {
                let _ = tx.blocking_send(Err(e));
            }
        }))?;
        Ok(rx)
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// The length of the longest suffix of `text` that begins some stop sequence: text that must be
/// held back until we know whether a stop sequence follows.
fn holdback(text: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            let prefix = &stop[..i];
            if i > keep && text.ends_with(prefix) {
                keep = i;
            }
        }
    }
    keep
}

impl Inner {
    fn run(&self, engine: &mut Engine, job: Job) -> Result<()> {
        let send = |chunk: ChatChunk| job.tx.blocking_send(Ok(chunk)).is_ok();
        engine.clear();
        let device = Device::Cpu;
        let mut sampler = LogitsProcessor::new(job.seed, job.temperature, job.top_p);
        let input = Tensor::new(job.prompt.as_slice(), &device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(inference_error)?;
        let mut logits = engine.forward(&input, 0).map_err(inference_error)?;
        let mut history = job.prompt.clone();
        let mut decoder = self.tokenizer.decode_stream(true);
        let mut text = String::new();
        let mut sent = 0usize;
        let mut generated = 0usize;
        let mut finish = FinishReason::Length;
        if !send(ChatChunk::Model(self.name.clone())) {
            return Ok(());
        }
        'generation: while generated < job.max_new {
            if job.tx.is_closed() {
                return Ok(()); // the caller went away: stop working
            }
            let logits_for_sampling = if self.repeat_penalty != 1.0 && self.repeat_last_n > 0 {
                let start = history.len().saturating_sub(self.repeat_last_n);
                candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    self.repeat_penalty,
                    &history[start..],
                )
                .map_err(inference_error)?
            } else {
                logits.clone()
            };
            let next = sampler
                .sample(&logits_for_sampling)
                .map_err(inference_error)?;
            if self.eos_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            generated += 1;
            history.push(next);
            if let Some(piece) = decoder
                .step(next)
                .map_err(|e| inference_error(format!("cannot decode token {next}: {e}")))?
            {
                text.push_str(&piece);
                // A stop sequence ends the answer; it and what follows are not part of it.
                let search_from =
                    sent.saturating_sub(job.stop.iter().map(String::len).max().unwrap_or(0));
                let search_from = (0..=search_from)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                let hit = job
                    .stop
                    .iter()
                    .filter_map(|s| {
                        text[search_from..]
                            .find(s.as_str())
                            .map(|p| p + search_from)
                    })
                    .min();
                if let Some(at) = hit {
                    text.truncate(at);
                    if at > sent && !send(ChatChunk::TextDelta(text[sent..].to_owned())) {
                        return Ok(());
                    }
                    sent = text.len().max(sent);
                    finish = FinishReason::Stop;
                    break 'generation;
                }
                let safe = text.len() - holdback(&text, &job.stop);
                if safe > sent {
                    if !send(ChatChunk::TextDelta(text[sent..safe].to_owned())) {
                        return Ok(());
                    }
                    sent = safe;
                }
            }
            if generated < job.max_new {
                let pos = history.len() - 1;
                let input = Tensor::new(&[next], &device)
                    .and_then(|t| t.unsqueeze(0))
                    .map_err(inference_error)?;
                logits = engine.forward(&input, pos).map_err(inference_error)?;
            }
        }
        if matches!(finish, FinishReason::Length) && text.len() > sent {
            // Held-back text that turned out not to be a stop sequence.
            if !send(ChatChunk::TextDelta(text[sent..].to_owned())) {
                return Ok(());
            }
        }
        if matches!(finish, FinishReason::Length) && job.limit_is_context {
            tracing::debug!(model = %self.name, "answer cut at the end of the context window");
        }
        let usage = Usage::new(job.prompt.len() as u64, generated as u64);
        let _ = send(ChatChunk::Usage(usage)) && send(ChatChunk::Finish(finish));
        Ok(())
    }
}

/// The messages as the template sees them, with the tool and JSON instructions folded into the
/// system message.
fn prompt_messages(request: &ChatRequest) -> Result<Vec<TemplateMessage>> {
    let mut extra = String::new();
    let tools_on = !request.tools.is_empty() && request.tool_choice != Some(ToolChoice::None);
    if tools_on {
        extra.push_str(
            "You can call tools. To call one, reply with only \
             <tool_call>{\"name\": \"TOOL_NAME\", \"arguments\": {...}}</tool_call> and nothing \
             else. Otherwise answer normally.\nTools:\n",
        );
        for tool in &request.tools {
            extra.push_str(&format!(
                "- {}: {} Arguments (JSON schema): {}\n",
                tool.name, tool.description, tool.parameters
            ));
        }
        if let Some(ToolChoice::Tool(name)) = &request.tool_choice {
            extra.push_str(&format!("You must call the tool {name}.\n"));
        } else if request.tool_choice == Some(ToolChoice::Required) {
            extra.push_str("You must call a tool.\n");
        }
    }
    match &request.response_format {
        Some(ResponseFormat::JsonObject) => {
            extra.push_str("Reply with a single JSON object and nothing else.\n");
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            extra.push_str(&format!(
                "Reply with a single JSON object matching this JSON schema and nothing else: {schema}\n"
            ));
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(request.messages.len() + 1);
    for (i, m) in request.messages.iter().enumerate() {
        out.push(template_message(i, m)?);
    }
    if !extra.is_empty() {
        match out.first_mut() {
            Some(first) if first.role == "system" => {
                first.content = format!("{}\n\n{}", first.content, extra.trim_end());
            }
            _ => out.insert(
                0,
                TemplateMessage {
                    role: "system",
                    content: extra.trim_end().to_owned(),
                },
            ),
        }
    }
    Ok(out)
}

fn template_message(index: usize, m: &Message) -> Result<TemplateMessage> {
    let mut content = String::new();
    for part in &m.content {
        match part.as_text() {
            Some(t) => content.push_str(t),
            None => {
                return Err(Error::invalid_input(format!(
                    "message {index}: local chat models read text only; {} cannot take images",
                    describe_part(part)
                )))
            }
        }
    }
    Ok(match m.role {
        Role::System => TemplateMessage {
            role: "system",
            content,
        },
        Role::User => TemplateMessage {
            role: "user",
            content,
        },
        Role::Assistant => {
            for call in &m.tool_calls {
                content.push_str(&format!(
                    "<tool_call>{{\"name\": {}, \"arguments\": {}}}</tool_call>",
                    Value::String(call.name.clone()),
                    call.arguments
                ));
            }
            TemplateMessage {
                role: "assistant",
                content,
            }
        }
        Role::Tool => TemplateMessage {
            role: "user",
            content: format!(
                "Tool result{}: {content}",
                m.name
                    .as_deref()
                    .map(|n| format!(" from {n}"))
                    .unwrap_or_default()
            ),
        },
    })
}

fn describe_part(part: &ContentPart) -> &'static str {
    if part.as_text().is_some() {
        "text"
    } else {
        "this model"
    }
}

/// Finds `<tool_call>{...}</tool_call>` blocks (or a bare `{"name":…, "arguments":…}` reply).
fn parse_tool_calls(text: &str) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let (body, next) = match after.find("</tool_call>") {
            Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
            None => (after, ""),
        };
        if let Some(call) = tool_call_json(body.trim()) {
            calls.push(call);
        }
        rest = next;
    }
    if calls.is_empty() {
        if let Some(call) = tool_call_json(text.trim()) {
            calls.push(call);
        }
    }
    calls
}

fn tool_call_json(body: &str) -> Option<(String, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments = value
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !arguments.is_object() {
        return None;
    }
    Some((name, arguments.to_string()))
}

#[async_trait]
impl ChatModel for LocalChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        collect_stream(self.stream(request).await?).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let tools_on = !request.tools.is_empty() && request.tool_choice != Some(ToolChoice::None);
        let rx = self.start(&request)?;
        let raw = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        if !tools_on {
            return Ok(Box::pin(raw));
        }
        // With tools, the whole reply decides whether it is a call: buffer, then convert.
        let known: HashSet<String> = request.tools.iter().map(|t| t.name.clone()).collect();
        let converted = futures::stream::once(async move {
            let chunks: Vec<Result<ChatChunk>> = raw.collect().await;
            let mut text = String::new();
            let mut out = Vec::new();
            for chunk in chunks {
                match chunk {
                    Ok(ChatChunk::TextDelta(t)) => text.push_str(&t),
                    Ok(ChatChunk::Finish(reason)) => {
                        let calls: Vec<_> = parse_tool_calls(&text)
                            .into_iter()
                            .filter(|(name, _)| known.contains(name))
                            .collect();
                        if calls.is_empty() {
                            out.push(Ok(ChatChunk::TextDelta(std::mem::take(&mut text))));
                            out.push(Ok(ChatChunk::Finish(reason)));
                        } else {
                            for (index, (name, arguments)) in calls.into_iter().enumerate() {
                                out.push(Ok(ChatChunk::ToolCallDelta {
                                    index,
                                    id: Some(format!("call_{index}")),
                                    name: Some(name),
                                    arguments_delta: arguments,
                                }));
                            }
                            out.push(Ok(ChatChunk::Finish(FinishReason::ToolCalls)));
                        }
                    }
                    other => out.push(other),
                }
            }
            futures::stream::iter(out)
        })
        .flatten();
        Ok(Box::pin(converted))
    }

    fn model_info(&self) -> ModelInfo {
        let mut info = ModelInfo::new(PROVIDER, self.inner.name.clone());
        info.supports_streaming = true;
        info.context_window = u32::try_from(self.inner.context_length).ok();
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdback_keeps_possible_stop_prefixes() {
        let stops = vec!["\nUser:".to_owned(), "END".to_owned()];
        assert_eq!(holdback("hello\nUs", &stops), 3);
        assert_eq!(holdback("hello E", &stops), 1);
        assert_eq!(holdback("hello", &stops), 0);
        assert_eq!(holdback("héllo", &["é!".to_owned()]), 0);
    }

    #[test]
    fn tool_calls_are_parsed_from_tags_and_bare_json() {
        let calls = parse_tool_calls(
            "<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1}}</tool_call>\n<tool_call>{\"name\": \"now\"}",
        );
        assert_eq!(
            calls,
            vec![
                ("add".to_owned(), "{\"a\":1}".to_owned()),
                ("now".to_owned(), "{}".to_owned())
            ]
        );
        assert_eq!(
            parse_tool_calls("{\"name\": \"x\", \"arguments\": {}}"),
            vec![("x".to_owned(), "{}".to_owned())]
        );
        assert!(parse_tool_calls("no call here").is_empty());
        assert!(
            parse_tool_calls("<tool_call>{\"name\": \"x\", \"arguments\": 3}</tool_call>")
                .is_empty()
        );
    }

    #[test]
    fn instructions_join_the_system_message() {
        let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("hi")])
            .with_response_format(ResponseFormat::JsonObject);
        let msgs = prompt_messages(&request).unwrap();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0]
            .content
            .starts_with("Be brief.\n\nReply with a single JSON object"));
    }

    #[test]
    fn images_are_refused() {
        let request = ChatRequest::new(vec![Message::user_parts(vec![ContentPart::image_url(
            "https://example.com/a.png",
        )])]);
        let err = prompt_messages(&request).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
}
