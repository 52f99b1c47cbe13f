//! A llama decoder for GGUF chat models on the CPU: the same arithmetic as candle-transformers'
//! `quantized_llama` (which it follows, MIT/Apache-2.0), laid out for speed.
//!
//! - **The file's own 4-bit weights for each token.** A one-token step reads every weight once,
//!   so its time is the bytes it reads. Q4_0 and Q4_1 layers keep the file's blocks
//!   ([`Q4Matrix`], 0.625 byte a weight with f16 scales) for those steps, on CPUs with AVX2;
//!   prompts, many rows at once, take the Q8_0 copy below, whose int8 kernels are faster per
//!   row. SmolLM2-135M Q4_1: 70 MB of layer weights a token instead of 141 MB, 1.4× the
//!   tokens a second; both copies stay in memory (70 MB more than the Q8_0 copy alone).
//! - **The output layer on the file's Q8_0 blocks.** It runs on one row (the last position's
//!   logits), so on the same CPUs it reads the file's Q8_0 weights as they are ([`Q8Matrix`]):
//!   30 MB a token for SmolLM2's vocabulary where candle's padded copy read 40, and no copy for
//!   prompts. When the file ties it to the token embeddings, its rows are the embeddings too,
//!   dequantized one per token: no f32 table (113 MB for SmolLM2).
//! - **Fewer, better products.** Q, K and V are one Q8_0 product, gate and up another. On a CPU
//!   with VNNI (AVX-512 or AVX), a weight whose input width is not a multiple of 256
//!   (SmolLM2's 576) is zero-padded to one, so that candle's repacked int8 kernels (`vpdpbusd`)
//!   take it instead of its block-by-block dot products, 3–6× slower; the activations get the
//!   same zero columns for free, written by the RMSNorm pass. Zero columns add nothing to a dot
//!   product.
//! - **A cache that grows in place.** Keys and values are appended to per-layer buffers
//!   (keys transposed, values `[kv head][position][head dim]`; room for 256 more positions
//!   past a prompt, then doubling) instead of concatenating the whole cache into a new tensor
//!   at every token.
//! - **Causal attention over the real prefix only.** The prompt is attended in blocks of
//!   queries, each block scored against the keys up to its last position (no mask, half the
//!   work); the heads that share a key/value head (grouped-query attention) are scored in one
//!   product without copying the keys per head. One new token is attended with plain loops.
//! - **Fused passes** over plain `f32` slices for RMSNorm, RoPE (with the `1/√d` score scale
//!   folded into the queries), SwiGLU and the residual adds.
//!
//! Files this does not cover (mixtures of experts, partial rotary dimensions, weights that are
//! neither Q8_0 nor converted to it) run on candle's `quantized_llama` instead.

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{bail, Device, Module, Result, Tensor};
use rayon::prelude::*;

use super::bert::{each_on_pool, exp_nonpositive, max, sum, threads};
use super::chat::needs_requantize;
use super::q4::Q4Matrix;
use super::q8::Q8Matrix;

/// Query rows scored together when attending a prompt.
const QUERY_BLOCK: usize = 128;
/// candle's repacked int8 kernels take input widths that are multiples of this.
const PACK_WIDTH: usize = 256;
/// ... and output counts that are multiples of this.
const PACK_ROWS: usize = 16;
/// Positions a cache has room for past the ones it was grown to hold.
const CACHE_HEADROOM: usize = 256;
/// Keys from which one query's heads are attended in parallel (on candle's barrier pool, whose
/// spinning threads take a part within a microsecond or two).
const PARALLEL_KEYS: usize = 64;
/// Queries attended with plain loops rather than matrix products (one new token, typically).
const LOOP_ROWS: usize = 4;

/// A llama model: shared weights and this worker's key/value cache.
pub(crate) struct LlamaModel {
    weights: Arc<Weights>,
    cache: Vec<KvCache>,
    /// Positions held in the cache.
    len: usize,
}

/// The weights and shapes, shared by every worker.
struct Weights {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    /// Rotary tables: `[position][head_dim / 2]`, for `max_positions` positions.
    cos: Vec<f32>,
    sin: Vec<f32>,
    max_positions: usize,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    output: Output,
}

/// The token embeddings, `[vocabulary][hidden]`.
enum Embeddings {
    /// In f32.
    Dense(Vec<f32>),
    /// The output layer's Q8_0 rows, when the file ties the two (one row dequantized per
    /// token: the same values as the f32 copy, which would take 113 MB for SmolLM2).
    Blocks(Arc<Q8Matrix>),
}

/// The output layer, which runs on one row: the last position's.
enum Output {
    /// The file's own Q8_0 blocks ([`Q8Matrix`]), on CPUs where the 4-bit products run: a
    /// quarter fewer bytes a token than candle's padded copy, and no copy for prompts (they
    /// need only their last row's logits).
    Blocks(Arc<Q8Matrix>),
    /// Candle's products.
    Linear(Linear),
}

impl Output {
    /// The width of the rows it takes (padding included).
    fn width(&self) -> usize {
        match self {
            Output::Blocks(m) => m.inputs(),
            Output::Linear(l) => l.width,
        }
    }

    /// The logits of one row.
    fn forward(&self, x: Vec<f32>) -> Result<Vec<f32>> {
        match self {
            Output::Blocks(m) => m.forward(&x),
            Output::Linear(l) => l.forward(x, 1),
        }
    }
}

impl Weights {
    /// How many tokens the embeddings have.
    fn vocabulary(&self) -> usize {
        match &self.embeddings {
            Embeddings::Dense(e) => e.len() / self.hidden.max(1),
            Embeddings::Blocks(m) => m.outputs(),
        }
    }

    /// Writes `token`'s embedding into `row` (`hidden` values); `false` for a token outside
    /// the vocabulary.
    fn embed(&self, token: usize, row: &mut [f32]) -> bool {
        let h = self.hidden;
        match &self.embeddings {
            Embeddings::Dense(e) => match e.get(token * h..(token + 1) * h) {
                Some(e) => {
                    row.copy_from_slice(e);
                    true
                }
                None => false,
            },
            Embeddings::Blocks(m) => m.dequantize_row(token, row),
        }
    }
}

/// One decoder layer.
struct Layer {
    attention_norm: Vec<f32>,
    /// Queries, keys and values: `[heads + 2 kv_heads] × head_dim` outputs.
    qkv: Linear,
    attention_out: Linear,
    ffn_norm: Vec<f32>,
    /// Gate then up: `2 × intermediate` outputs.
    gate_up: Linear,
    down: Linear,
}

/// A weight (Q8_0 in use) multiplied transposed, with its input width (padding included).
struct Linear {
    matmul: QMatMul,
    width: usize,
    outputs: usize,
    /// The file's own 4-bit blocks, when they are Q4_0 or Q4_1: one-row products (a decoded
    /// token) read these, half the bytes of the Q8_0 copy that prompts use.
    q4: Option<Q4Matrix>,
}

/// How the products' weights are stored: Q8_0 (padded or not) in use; f32 in the tests, to
/// compare the arithmetic around the products with candle's exactly.
#[derive(Clone, Copy)]
struct Products {
    dtype: GgmlDType,
    pad: bool,
    /// Whether one-row products of Q4_0/Q4_1 weights read the file's blocks ([`Q4Matrix`]).
    q4: bool,
}

/// One layer's keys and values, with room for `capacity` positions per head.
#[derive(Default)]
struct KvCache {
    /// Transposed, `[kv head][head_dim][position]`: one query's scores are `head_dim`
    /// contiguous multiply-adds over the positions, with no sum across a vector.
    keys: Vec<f32>,
    /// `[kv head][position][head_dim]`.
    values: Vec<f32>,
    capacity: usize,
}

/// Whether candle's repacked Q8_0 kernels run on this CPU: as candle decides, AVX-512 VNNI or
/// AVX-VNNI (or `MISTRALRS_FORCE_AVXVNNI=1`), unless `MISTRALRS_FORCE_AVX2=1`.
fn repacked_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let forced = |var: &str| std::env::var(var).as_deref() == Ok("1");
        !forced("MISTRALRS_FORCE_AVX2")
            && ((is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
                || ((forced("MISTRALRS_FORCE_AVXVNNI") || is_x86_feature_detected!("avxvnni"))
                    && is_x86_feature_detected!("avx2")))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Linear {
    /// Stacks `parts` (`[outputs_i, inputs]` each, f32) into one Q8_0 weight, its inputs padded
    /// with zero columns to a multiple of [`PACK_WIDTH`] when `pad`.
    fn new(parts: &[Tensor], dtype: GgmlDType, pad: bool) -> Result<Self> {
        let weight = Tensor::cat(parts, 0)?;
        let (outputs, inputs) = weight.dims2()?;
        let width =
            if pad && !inputs.is_multiple_of(PACK_WIDTH) && outputs.is_multiple_of(PACK_ROWS) {
                inputs.next_multiple_of(PACK_WIDTH)
            } else {
                inputs
            };
        let weight = if width > inputs {
            weight.pad_with_zeros(1, 0, width - inputs)?
        } else {
            weight
        };
        let matmul = QMatMul::from_qtensor(QTensor::quantize(&weight, dtype)?)?;
        Ok(Self {
            matmul,
            width,
            outputs,
            q4: None,
        })
    }

    /// Adds the 4-bit copy of `parts` (the file's tensors this weight was stacked from) for
    /// one-row products, when they are Q4_0 or Q4_1 and `q4`.
    fn with_q4(mut self, parts: &[&QTensor], q4: bool) -> Result<Self> {
        if q4 {
            self.q4 = Q4Matrix::new(parts)?
                .filter(|m| m.outputs() == self.outputs && m.inputs() <= self.width);
        }
        Ok(self)
    }

    /// `x W^T` for `x`, `rows × width`: `rows × outputs`.
    fn forward(&self, x: Vec<f32>, rows: usize) -> Result<Vec<f32>> {
        if let (1, Some(q4)) = (rows, &self.q4) {
            return q4.forward(&x);
        }
        let x = Tensor::from_vec(x, (rows, self.width), &Device::Cpu)?;
        self.matmul.forward(&x)?.flatten_all()?.to_vec1()
    }
}

impl LlamaModel {
    /// Loads a llama GGUF file, or `None` when it is one this decoder does not cover (see the
    /// module docs). `requantize` converts Q4_0/Q4_1/Q5_0/Q5_1 weights to Q8_0 (without it,
    /// only Q8_0 files are covered); `max_positions` sizes the rotary tables.
    pub(crate) fn load<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        requantize: bool,
        max_positions: usize,
    ) -> Result<Option<Self>> {
        let products = Products {
            dtype: GgmlDType::Q8_0,
            pad: repacked_int8(),
            q4: Q4Matrix::fast(),
        };
        Self::load_with(content, reader, requantize, max_positions, products)
    }

    /// [`LlamaModel::load`] with the products' weights in `products.dtype`, their inputs padded
    /// for the repacked kernels when `products.pad`.
    fn load_with<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        requantize: bool,
        max_positions: usize,
        products: Products,
    ) -> Result<Option<Self>> {
        let Products { dtype, pad, q4 } = products;
        let md = &content.metadata;
        let get = |key: &str| -> Result<&gguf_file::Value> {
            md.get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("cannot find {key} in metadata")))
        };
        let experts = md
            .get("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0);
        let heads = get("llama.attention.head_count")?.to_u32()? as usize;
        let kv_heads = get("llama.attention.head_count_kv")?.to_u32()? as usize;
        let blocks = get("llama.block_count")?.to_u32()? as usize;
        let hidden = get("llama.embedding_length")?.to_u32()? as usize;
        let rope_dim = get("llama.rope.dimension_count")?.to_u32()? as usize;
        let eps = get("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let rope_base = md
            .get("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        if heads == 0 || kv_heads == 0 || hidden == 0 {
            bail!("a llama with {heads} heads, {kv_heads} key/value heads and {hidden} dimensions");
        }
        if !heads.is_multiple_of(kv_heads) || !hidden.is_multiple_of(heads) {
            bail!("{hidden} dimensions do not divide into {heads} heads sharing {kv_heads} key/value heads");
        }
        // Every block has at least seven tensors: a count beyond the file's is a lie, refused
        // before anything is sized by it.
        if blocks > content.tensor_infos.len() {
            bail!(
                "the file declares {blocks} blocks but holds {} tensors",
                content.tensor_infos.len()
            );
        }
        if experts > 1 || rope_dim != hidden / heads || !rope_dim.is_multiple_of(2) {
            return Ok(None);
        }
        let head_dim = hidden / heads;
        let Some(vocab) = content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.shape.dims().first().copied())
        else {
            return Ok(None);
        };
        let intermediate = content
            .tensor_infos
            .get("blk.0.ffn_gate.weight")
            .and_then(|t| t.shape.dims().first().copied())
            .unwrap_or(0);
        if vocab == 0 || intermediate == 0 {
            bail!("a llama with {vocab} tokens and {intermediate} feed-forward dimensions");
        }
        let mut products = vec![("token_embd.weight".to_owned(), vec![vocab, hidden])];
        if content.tensor_infos.contains_key("output.weight") {
            products.push(("output.weight".to_owned(), vec![vocab, hidden]));
        }
        let mut norms = vec!["output_norm.weight".to_owned()];
        let (q, kv) = (heads * head_dim, kv_heads * head_dim);
        for layer in 0..blocks {
            for (part, shape) in [
                ("attn_q", [q, hidden]),
                ("attn_k", [kv, hidden]),
                ("attn_v", [kv, hidden]),
                ("attn_output", [hidden, q]),
                ("ffn_gate", [intermediate, hidden]),
                ("ffn_up", [intermediate, hidden]),
                ("ffn_down", [hidden, intermediate]),
            ] {
                products.push((format!("blk.{layer}.{part}.weight"), shape.to_vec()));
            }
            norms.push(format!("blk.{layer}.attn_norm.weight"));
            norms.push(format!("blk.{layer}.ffn_norm.weight"));
        }
        // Every tensor has the shape the metadata implies (a malformed file is an error here,
        // not a panic or silent nonsense later); covered are Q8_0 weights, converted ones
        // included, whose rows are whole Q8_0 blocks.
        let checked = products
            .iter()
            .map(|(name, shape)| (name, shape.as_slice()))
            .chain(
                norms
                    .iter()
                    .map(|name| (name, std::slice::from_ref(&hidden))),
            );
        for (name, shape) in checked {
            let Some(info) = content.tensor_infos.get(name) else {
                return Ok(None);
            };
            if info.shape.dims() != shape {
                bail!(
                    "tensor {name} is {:?} where the metadata implies {shape:?}",
                    info.shape.dims()
                );
            }
        }
        for (name, _) in &products {
            let Some(info) = content.tensor_infos.get(name) else {
                return Ok(None);
            };
            let dtype_ok = info.ggml_dtype == GgmlDType::Q8_0
                || (requantize && needs_requantize(info.ggml_dtype));
            if !dtype_ok || !hidden.is_multiple_of(32) || !intermediate.is_multiple_of(32) {
                return Ok(None);
            }
        }
        let device = Device::Cpu;
        let mut read = |name: &str| content.tensor(reader, name, &device);
        // Dequantized only where f32 rows are used: not when the output layer's Q8_0 blocks
        // serve as the embeddings (113 MB for SmolLM2).
        let embeddings_file = read("token_embd.weight")?;
        let output_file = if content.tensor_infos.contains_key("output.weight") {
            Some(read("output.weight")?)
        } else {
            None
        };
        let norm = read("output_norm.weight")?.dequantize(&device)?.to_vec1()?;
        // The file is read in order; the conversions (dequantize, stack, pad, quantize: most of
        // the load time) run on every core, a layer at a time, beside the output layer's.
        const PARTS: [&str; 9] = [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "attn_norm",
            "ffn_norm",
        ];
        let mut files = Vec::with_capacity(blocks);
        for layer in 0..blocks {
            let parts = PARTS
                .iter()
                .map(|p| read(&format!("blk.{layer}.{p}.weight")))
                .collect::<Result<Vec<QTensor>>>()?;
            files.push(parts);
        }
        let build_layer = |(layer, parts): (usize, Vec<QTensor>)| -> Result<Layer> {
            let dense = parts
                .iter()
                .map(|t| t.dequantize(&Device::Cpu))
                .collect::<Result<Vec<Tensor>>>()?;
            let [q, k, v, o, gate, up, down, attention_norm, ffn_norm] = dense.as_slice() else {
                bail!("llama layer {layer} is missing weights");
            };
            let qkv = Linear::new(&[q.clone(), k.clone(), v.clone()], dtype, pad)?;
            let attention_out = Linear::new(std::slice::from_ref(o), dtype, pad)?;
            let gate_up = Linear::new(&[gate.clone(), up.clone()], dtype, pad)?;
            let down = Linear::new(std::slice::from_ref(down), dtype, pad)?;
            let attention_norm = attention_norm.to_vec1()?;
            let ffn_norm = ffn_norm.to_vec1()?;
            if qkv.outputs != (heads + 2 * kv_heads) * head_dim
                || attention_out.outputs != hidden
                || !gate_up.outputs.is_multiple_of(2)
                || down.outputs != hidden
                || down.width < gate_up.outputs / 2
                || attention_norm.len() != hidden
                || ffn_norm.len() != hidden
            {
                bail!("llama layer {layer} has weights of unexpected shapes");
            }
            // The 4-bit copies once the shapes are known to be right.
            let file = |i: usize| &parts[i];
            Ok(Layer {
                attention_norm,
                qkv: qkv.with_q4(&[file(0), file(1), file(2)], q4)?,
                attention_out: attention_out.with_q4(&[file(3)], q4)?,
                ffn_norm,
                gate_up: gate_up.with_q4(&[file(4), file(5)], q4)?,
                down: down.with_q4(&[file(6)], q4)?,
            })
        };
        let build_output = || -> Result<Output> {
            let file = output_file.as_ref().unwrap_or(&embeddings_file);
            if q4 {
                if let Some(m) = Q8Matrix::new(file)?.filter(|m| m.inputs() == hidden) {
                    return Ok(Output::Blocks(Arc::new(m)));
                }
            }
            match &output_file {
                Some(t) => Linear::new(&[t.dequantize(&Device::Cpu)?], dtype, pad),
                None => Linear::new(&[embeddings_file.dequantize(&Device::Cpu)?], dtype, pad),
            }
            .map(Output::Linear)
        };
        let (output, layers) = rayon::join(build_output, || {
            files
                .into_par_iter()
                .enumerate()
                .map(build_layer)
                .collect::<Result<Vec<Layer>>>()
        });
        let (output, layers) = (output?, layers?);
        if embeddings_file.shape().dims().get(1) != Some(&hidden) || norm.len() != hidden {
            bail!("the llama embeddings or output norm are not {hidden} wide");
        }
        // The rotary tables as candle computes them: θ_i = base^(-2i/d) in f32, then p·θ_i.
        let half = head_dim / 2;
        let theta: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / rope_base.powf(i as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for t in &theta {
                let angle = p as f32 * t;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let weights = Weights {
            hidden,
            heads,
            kv_heads,
            head_dim,
            eps,
            cos,
            sin,
            max_positions,
            embeddings: match (&output, &output_file) {
                (Output::Blocks(m), None) => Embeddings::Blocks(Arc::clone(m)),
                _ => Embeddings::Dense(
                    embeddings_file
                        .dequantize(&device)?
                        .flatten_all()?
                        .to_vec1()?,
                ),
            },
            layers,
            norm,
            output,
        };
        Ok(Some(Self::with_weights(Arc::new(weights))))
    }

    fn with_weights(weights: Arc<Weights>) -> Self {
        let cache = weights.layers.iter().map(|_| KvCache::default()).collect();
        Self {
            weights,
            cache,
            len: 0,
        }
    }

    /// Another worker over the same weights, with an empty cache.
    pub(crate) fn fork(&self) -> Self {
        Self::with_weights(Arc::clone(&self.weights))
    }

    /// Empties the cache (its memory is released).
    pub(crate) fn clear(&mut self) {
        self.cache.iter_mut().for_each(|c| *c = KvCache::default());
        self.len = 0;
    }

    /// Runs `tokens` at positions `pos..`, after the cache's first `pos` positions (a `pos`
    /// below the cache's length rewinds it), and returns the last token's logits. An error
    /// before the layers run leaves the cache as it was; one inside them leaves it at `pos`,
    /// as if rewound.
    pub(crate) fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let w = Arc::clone(&self.weights);
        let rows = tokens.len();
        if rows == 0 {
            bail!("no tokens to run");
        }
        if pos > self.len {
            bail!("position {pos} is past the {} cached positions", self.len);
        }
        let end = pos + rows;
        if end > w.max_positions {
            bail!(
                "{end} positions exceed the model's {} positions",
                w.max_positions
            );
        }
        let h = w.hidden;
        let mut x = vec![0f32; rows * h];
        let vocab = w.vocabulary();
        for (row, &token) in x.chunks_exact_mut(h).zip(tokens) {
            let token = token as usize;
            if token >= vocab {
                bail!("token id {token} is outside the vocabulary of {vocab}");
            }
            if !w.embed(token, row) {
                bail!("token id {token} is outside the vocabulary of {vocab}");
            }
        }
        self.len = pos;
        for (layer, cache) in w.layers.iter().zip(self.cache.iter_mut()) {
            let normed = rms_norm(&x, h, &layer.attention_norm, w.eps, layer.qkv.width);
            let mut qkv = layer.qkv.forward(normed, rows)?;
            w.rotate(&mut qkv, pos)?;
            cache.append(&w, &qkv, pos, rows);
            let context = w.attention(&qkv, cache, pos, rows, layer.attention_out.width)?;
            add(&mut x, &layer.attention_out.forward(context, rows)?);

            let normed = rms_norm(&x, h, &layer.ffn_norm, w.eps, layer.gate_up.width);
            let gate_up = layer.gate_up.forward(normed, rows)?;
            let activated = swiglu(&gate_up, layer.gate_up.outputs / 2, layer.down.width);
            add(&mut x, &layer.down.forward(activated, rows)?);
        }
        self.len = end;
        let last = &x[(rows - 1) * h..];
        let normed = rms_norm(last, h, &w.norm, w.eps, w.output.width());
        w.output.forward(normed)
    }
}

impl Weights {
    /// Width of one row of the QKV product.
    fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Rotates the queries and keys of each row (position `pos + row`) in place, interleaved
    /// pairs as llama's GGUF weights expect, and scales the queries by `1/√d`.
    fn rotate(&self, qkv: &mut [f32], pos: usize) -> Result<()> {
        let (d, half) = (self.head_dim, self.head_dim / 2);
        let rotated = (self.heads + self.kv_heads) * d;
        let q_width = self.heads * d;
        let scale = 1.0 / (d as f32).sqrt();
        let width = self.qkv_width();
        let rows = qkv.len() / width.max(1);
        if (pos + rows) * half > self.cos.len() {
            bail!("positions up to {} have no rotary angles", pos + rows);
        }
        let rotate_row = |(r, row): (usize, &mut [f32])| {
            let at = (pos + r) * half;
            let (cos, sin) = (&self.cos[at..at + half], &self.sin[at..at + half]);
            for (i, head) in row[..rotated].chunks_exact_mut(d).enumerate() {
                for ((pair, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * c - b * s;
                    pair[1] = a * s + b * c;
                }
                if i * d < q_width {
                    head.iter_mut().for_each(|v| *v *= scale);
                }
            }
        };
        if threads() > 1 && rows > 1 {
            qkv.par_chunks_mut(width).enumerate().for_each(rotate_row);
        } else {
            qkv.chunks_mut(width).enumerate().for_each(rotate_row);
        }
        Ok(())
    }

    /// The attention context, `rows × width` (head `h` in columns `h·d..(h+1)·d`, zeros after
    /// the heads), of rows whose queries are in `qkv` and whose keys and values are already in
    /// `cache`.
    fn attention(
        &self,
        qkv: &[f32],
        cache: &KvCache,
        pos: usize,
        rows: usize,
        width: usize,
    ) -> Result<Vec<f32>> {
        let mut out = vec![0f32; rows * width];
        if rows <= LOOP_ROWS {
            self.attention_loops(qkv, cache, pos, &mut out, width);
        } else {
            self.attention_blocks(qkv, cache, pos, rows, &mut out, width)?;
        }
        Ok(out)
    }

    /// Attention with plain loops, for a few rows: each head scores its whole prefix.
    fn attention_loops(
        &self,
        qkv: &[f32],
        cache: &KvCache,
        pos: usize,
        out: &mut [f32],
        width: usize,
    ) {
        let d = self.head_dim;
        let group = self.heads / self.kv_heads;
        let qkv_width = self.qkv_width();
        for (r, (q_row, out_row)) in qkv
            .chunks_exact(qkv_width)
            .zip(out.chunks_exact_mut(width))
            .enumerate()
        {
            let keys = pos + r + 1;
            let head = |(h, ctx): (usize, &mut [f32])| {
                let q = &q_row[h * d..(h + 1) * d];
                let base = (h / group) * cache.capacity * d;
                let ks = &cache.keys[base..base + cache.capacity * d];
                let vs = &cache.values[base..base + keys * d];
                let mut scores = vec![0f32; keys];
                for (qi, k) in q.iter().zip(ks.chunks_exact(cache.capacity)) {
                    for (s, k) in scores.iter_mut().zip(&k[..keys]) {
                        *s += qi * k;
                    }
                }
                softmax(&mut scores);
                for (p, v) in scores.iter().zip(vs.chunks_exact(d)) {
                    for (c, x) in ctx.iter_mut().zip(v) {
                        *c += p * x;
                    }
                }
            };
            let heads = &mut out_row[..self.heads * d];
            if threads() > 1 && keys >= PARALLEL_KEYS {
                each_on_pool(heads.chunks_mut(d), |h, ctx| head((h, ctx)));
            } else {
                heads.chunks_mut(d).enumerate().for_each(head);
            }
        }
    }

    /// Attention for a prompt: per key/value head and block of query rows, one product for
    /// the scores of every head in the group against the keys up to the block's last position,
    /// a causal softmax in place, and one product with the values.
    fn attention_blocks(
        &self,
        qkv: &[f32],
        cache: &KvCache,
        pos: usize,
        rows: usize,
        out: &mut [f32],
        width: usize,
    ) -> Result<()> {
        let d = self.head_dim;
        let group = self.heads / self.kv_heads;
        let qkv_width = self.qkv_width();
        let end = pos + rows;
        for kv in 0..self.kv_heads {
            let base = kv * cache.capacity * d;
            let mut transposed = Vec::with_capacity(d * end);
            for k in cache.keys[base..base + cache.capacity * d].chunks_exact(cache.capacity) {
                transposed.extend_from_slice(&k[..end]);
            }
            let keys = Tensor::from_vec(transposed, (d, end), &Device::Cpu)?;
            let values =
                Tensor::from_slice(&cache.values[base..base + end * d], (end, d), &Device::Cpu)?;
            for first in (0..rows).step_by(QUERY_BLOCK) {
                let block = QUERY_BLOCK.min(rows - first);
                let seen = pos + first + block;
                // The group's queries, head-major: row j·block + i is head kv·group + j, query i.
                let mut queries = Vec::with_capacity(group * block * d);
                for j in 0..group {
                    let column = (kv * group + j) * d;
                    for i in 0..block {
                        let at = (first + i) * qkv_width + column;
                        queries.extend_from_slice(&qkv[at..at + d]);
                    }
                }
                let queries = Tensor::from_vec(queries, (group * block, d), &Device::Cpu)?;
                let mut scores = queries
                    .matmul(&keys.narrow(1, 0, seen)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let causal = |(r, row): (usize, &mut [f32])| {
                    let visible = (pos + first + r % block + 1).min(row.len());
                    let (live, hidden) = row.split_at_mut(visible);
                    softmax(live);
                    hidden.iter_mut().for_each(|s| *s = 0.0);
                };
                if threads() > 1 {
                    scores.par_chunks_mut(seen).enumerate().for_each(causal);
                } else {
                    scores.chunks_mut(seen).enumerate().for_each(causal);
                }
                let probabilities = Tensor::from_vec(scores, (group * block, seen), &Device::Cpu)?;
                let context = probabilities
                    .matmul(&values.narrow(0, 0, seen)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                for (r, ctx) in context.chunks_exact(d).enumerate() {
                    let (j, i) = (r / block, r % block);
                    let at = (first + i) * width + (kv * group + j) * d;
                    out[at..at + d].copy_from_slice(ctx);
                }
            }
        }
        Ok(())
    }
}

impl KvCache {
    /// Appends the keys and values of `rows` rows of `qkv` at positions `pos..`, growing the
    /// buffers (doubling, at most to the model's positions) when they are full.
    fn append(&mut self, w: &Weights, qkv: &[f32], pos: usize, rows: usize) {
        let d = w.head_dim;
        let end = pos + rows;
        if end > self.capacity {
            // Room for some answer after a prompt, then doubling.
            let capacity = (end + CACHE_HEADROOM)
                .max(2 * self.capacity)
                .min(w.max_positions)
                .max(end);
            let mut keys = vec![0f32; w.kv_heads * capacity * d];
            let mut values = vec![0f32; w.kv_heads * capacity * d];
            if self.capacity > 0 {
                let old_rows = self.keys.chunks_exact(self.capacity);
                for (new, old) in keys.chunks_exact_mut(capacity).zip(old_rows) {
                    new[..pos].copy_from_slice(&old[..pos]);
                }
            }
            for kv in 0..w.kv_heads {
                let (old, new) = (kv * self.capacity * d, kv * capacity * d);
                let kept = pos * d;
                values[new..new + kept].copy_from_slice(&self.values[old..old + kept]);
            }
            (self.keys, self.values, self.capacity) = (keys, values, capacity);
        }
        let q_width = w.heads * d;
        let kv_width = w.kv_heads * d;
        for (r, row) in qkv.chunks_exact(w.qkv_width()).take(rows).enumerate() {
            let keys = &row[q_width..q_width + kv_width];
            for (i, &k) in keys.iter().enumerate() {
                // Key i of the row is head i / d's component i % d: row i of the transposed keys.
                self.keys[i * self.capacity + pos + r] = k;
            }
            for kv in 0..w.kv_heads {
                let at = (kv * self.capacity + pos + r) * d;
                let v = &row[q_width + kv_width + kv * d..q_width + kv_width + (kv + 1) * d];
                self.values[at..at + d].copy_from_slice(v);
            }
        }
    }
}

/// RMSNorm of each `hidden`-wide row of `x`, scaled by `weight`, into rows `width` wide (the
/// columns after `hidden` stay zero: the padding the next product expects).
fn rms_norm(x: &[f32], hidden: usize, weight: &[f32], eps: f32, width: usize) -> Vec<f32> {
    let rows = x.len() / hidden;
    let mut out = vec![0f32; rows * width];
    let norm = |(o, x): (&mut [f32], &[f32])| {
        let squares = sum_of_squares(x);
        let scale = 1.0 / (squares / hidden as f32 + eps).sqrt();
        for ((o, x), w) in o.iter_mut().zip(x).zip(weight) {
            *o = x * scale * w;
        }
    };
    if threads() > 1 && rows > 1 {
        out.par_chunks_mut(width)
            .zip(x.par_chunks(hidden))
            .for_each(norm);
    } else {
        out.chunks_mut(width).zip(x.chunks(hidden)).for_each(norm);
    }
    out
}

/// `silu(gate) · up` for each row of `[gate | up]` (`2 × intermediate` wide), into rows
/// `width` wide.
fn swiglu(gate_up: &[f32], intermediate: usize, width: usize) -> Vec<f32> {
    let rows = gate_up.len() / (2 * intermediate).max(1);
    let mut out = vec![0f32; rows * width];
    let activate = |(o, gu): (&mut [f32], &[f32])| {
        let (gate, up) = gu.split_at(intermediate);
        for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
            // σ(g) from e^{-|g|} ≤ 1: no overflow either side, and it vectorises.
            let e = exp_nonpositive(-g.abs());
            let sigmoid = if g >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            *o = g * sigmoid * u;
        }
    };
    if threads() > 1 && rows > 1 {
        out.par_chunks_mut(width)
            .zip(gate_up.par_chunks(2 * intermediate))
            .for_each(activate);
    } else {
        out.chunks_mut(width)
            .zip(gate_up.chunks(2 * intermediate))
            .for_each(activate);
    }
    out
}

/// `x += y`, element by element.
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// `x ← softmax(x)` in place.
fn softmax(x: &mut [f32]) {
    let top = max(x);
    x.iter_mut().for_each(|s| *s = exp_nonpositive(*s - top));
    let inv = 1.0 / sum(x);
    x.iter_mut().for_each(|s| *s *= inv);
}

/// `Σ x²` with eight partial sums, which the compiler keeps in vector registers.
fn sum_of_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_transformers::models::quantized_llama::ModelWeights;
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::sync::LazyLock;

    fn chat_file() -> PathBuf {
        let cache = std::env::var_os("CATENA_MODEL_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .map(|c| c.join("catena/models"))
            })
            .expect("HOME, XDG_CACHE_HOME or CATENA_MODEL_DIR");
        let path = std::env::var_os("CATENA_CHAT_MODEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(
            path.exists(),
            "{} is missing: run `eval \"$(bash scripts/models.sh fetch)\"` first",
            path.display()
        );
        path
    }

    /// The test model as this decoder loads it, its products in `dtype`, padded or not, its
    /// one-token products on the file's 4-bit blocks or not.
    fn ours(dtype: GgmlDType, pad: bool, q4: bool) -> LlamaModel {
        let mut file = std::fs::File::open(chat_file()).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let products = Products { dtype, pad, q4 };
        LlamaModel::load_with(&content, &mut file, true, 4096, products)
            .unwrap()
            .expect("SmolLM2 is a llama this decoder covers")
    }

    static Q8: LazyLock<LlamaModel> = LazyLock::new(|| ours(GgmlDType::Q8_0, false, false));
    static Q8_PADDED: LazyLock<LlamaModel> = LazyLock::new(|| ours(GgmlDType::Q8_0, true, false));
    static F32: LazyLock<LlamaModel> = LazyLock::new(|| ours(GgmlDType::F32, false, false));
    /// As [`LlamaModel::load`] loads it on a CPU with AVX2 (elsewhere the 4-bit products run
    /// their portable kernel here).
    static IN_USE: LazyLock<LlamaModel> =
        LazyLock::new(|| ours(GgmlDType::Q8_0, repacked_int8(), true));

    /// candle's `quantized_llama` over the same weights: the file's re-quantized to Q8_0 as
    /// `chat.rs` does, or all in f32.
    fn reference(dtype: GgmlDType) -> ModelWeights {
        let device = Device::Cpu;
        let mut file = std::fs::File::open(chat_file()).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let tensors: Vec<(String, QTensor)> = content
            .tensor_infos
            .keys()
            .map(|name| {
                let t = content.tensor(&mut file, name, &device).unwrap();
                let t = if needs_requantize(t.dtype()) || dtype == GgmlDType::F32 {
                    QTensor::quantize(&t.dequantize(&device).unwrap(), dtype).unwrap()
                } else {
                    t
                };
                (name.clone(), t)
            })
            .collect();
        let metadata: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut buffer = Cursor::new(Vec::new());
        gguf_file::write(&mut buffer, &metadata, &refs).unwrap();
        buffer.set_position(0);
        let content = gguf_file::Content::read(&mut buffer).unwrap();
        ModelWeights::from_gguf(content, &mut buffer, &device).unwrap()
    }

    static REFERENCE_Q8: LazyLock<ModelWeights> = LazyLock::new(|| reference(GgmlDType::Q8_0));
    /// Without quantized activations: the closest to the model's own numbers.
    static TRUTH: LazyLock<ModelWeights> = LazyLock::new(|| reference(GgmlDType::F32));

    /// Real text as the model's tokens: `n` of them.
    fn prompt(n: usize) -> Vec<u32> {
        let mut file = std::fs::File::open(chat_file()).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let tokenizer = super::super::tokenizer::from_gguf(&content).unwrap();
        let text = include_str!("../../../docs/retrieval.md");
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert!(ids.len() >= n, "the text has {} tokens", ids.len());
        ids[..n].to_vec()
    }

    fn reference_logits(model: &mut ModelWeights, tokens: &[u32], pos: usize) -> Vec<f32> {
        let input = Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        model
            .forward(&input, pos)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn argmax(x: &[f32]) -> u32 {
        let mut best = 0;
        for (i, v) in x.iter().enumerate() {
            if *v > x[best] {
                best = i;
            }
        }
        best as u32
    }

    /// The largest difference, relative to the largest reference logit.
    fn relative_difference(a: &[f32], reference: &[f32]) -> f32 {
        assert_eq!(a.len(), reference.len());
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    type Forward<'a> = Box<dyn FnMut(&[u32], usize) -> Vec<f32> + 'a>;

    fn ours_forward(model: &mut LlamaModel) -> Forward<'_> {
        Box::new(move |tokens, pos| model.forward(tokens, pos).unwrap())
    }

    fn candle_forward(model: &mut ModelWeights) -> Forward<'_> {
        Box::new(move |tokens, pos| reference_logits(model, tokens, pos))
    }

    /// How a model's logits compare with a reference's.
    #[derive(Debug)]
    struct Agreement {
        /// The largest difference, relative to the reference's largest logit.
        worst: f32,
        /// The least cosine between them.
        least_cosine: f64,
        /// Steps where the greedy choices differ.
        other_choices: usize,
    }

    /// Runs a prompt longer than two query blocks, then `steps` greedy steps (feeding both
    /// the reference's choice), on `model` and `reference`.
    fn compare(mut model: Forward<'_>, mut reference: Forward<'_>, steps: usize) -> Agreement {
        let tokens = prompt(2 * QUERY_BLOCK + 45);
        let mut expected = reference(&tokens, 0);
        let mut got = model(&tokens, 0);
        let mut agreement = Agreement {
            worst: 0.0,
            least_cosine: 1.0,
            other_choices: 0,
        };
        let mut pos = tokens.len();
        for step in 0..=steps {
            agreement.worst = agreement.worst.max(relative_difference(&got, &expected));
            agreement.least_cosine = agreement.least_cosine.min(cosine(&got, &expected));
            let next = argmax(&expected);
            agreement.other_choices += usize::from(argmax(&got) != next);
            if step < steps {
                expected = reference(&[next], pos);
                got = model(&[next], pos);
                pos += 1;
            }
        }
        agreement
    }

    #[test]
    fn in_f32_it_computes_what_candles_quantized_llama_computes() {
        // Without quantized activations the only differences are in the order of sums (and
        // the exponentials' last bits), so the logits agree closely.
        let a = compare(
            ours_forward(&mut F32.fork()),
            candle_forward(&mut TRUTH.clone()),
            12,
        );
        assert!(a.worst < 1e-4 && a.least_cosine > 0.999_999, "{a:?}");
        assert_eq!(a.other_choices, 0, "{a:?}");
    }

    #[test]
    fn with_q8_products_it_is_as_close_to_the_f32_numbers_as_candles_q8() {
        // Quantizing activations to int8 (blocks of 32) moves the logits a few per cent; ours
        // as much as candle's, with the same greedy choices.
        let theirs = compare(
            candle_forward(&mut REFERENCE_Q8.clone()),
            candle_forward(&mut TRUTH.clone()),
            12,
        );
        let ours = compare(
            ours_forward(&mut Q8.fork()),
            candle_forward(&mut TRUTH.clone()),
            12,
        );
        assert!(
            ours.least_cosine > theirs.least_cosine - 1e-3 && ours.worst < 2.0 * theirs.worst,
            "ours {ours:?}, candle's {theirs:?}"
        );
        assert_eq!(ours.other_choices, 0, "{ours:?}");
    }

    #[test]
    fn padded_for_the_int8_kernels_it_keeps_the_greedy_choices() {
        // The repacked kernels quantize activations in blocks of 256 instead of 32: coarser
        // (cosines of 0.983–0.994 to the f32 logits, depending on where roundings fall, where
        // Q8_0 blocks give 0.998), the same choices. Rows written `hidden`
        // apart instead of `width` (misaligned with the padded weights) fail it.
        let a = compare(
            ours_forward(&mut Q8_PADDED.fork()),
            candle_forward(&mut TRUTH.clone()),
            12,
        );
        assert!(a.least_cosine > 0.97 && a.worst < 0.15, "{a:?}");
        assert_eq!(a.other_choices, 0, "{a:?}");
    }

    #[test]
    fn one_token_steps_on_the_files_4_bit_blocks_keep_the_greedy_choices() {
        // As loaded in use: the prompt through the Q8_0 copy, every step after it through the
        // file's own Q4_1 blocks (int8 activations in blocks of 32, as llama.cpp computes). A
        // prompt run one token at a time after its first half (cosine 0.9996 to the whole
        // prompt at once) keeps the greedy choice too, up to a near tie.
        let layers = &IN_USE.weights.layers;
        assert!(
            layers.iter().all(|l| l.qkv.q4.is_some()
                && l.attention_out.q4.is_some()
                && l.gate_up.q4.is_some()
                && l.down.q4.is_some()),
            "every layer of the Q4_1 file has its 4-bit products"
        );
        // The tied Q8_0 embeddings serve as the output layer's blocks and as the embeddings.
        let w = &IN_USE.weights;
        assert!(
            matches!(&w.output, Output::Blocks(m) if m.outputs() == 49_152)
                && matches!(&w.embeddings, Embeddings::Blocks(_)),
            "the output layer reads the file's Q8_0 blocks"
        );
        assert!(matches!(&Q8.weights.embeddings, Embeddings::Dense(_)));
        let (mut blocks, mut dense) = (vec![0f32; 576], vec![0f32; 576]);
        for token in [0, 1, 4_321, 49_151] {
            assert!(w.embed(token, &mut blocks) && Q8.weights.embed(token, &mut dense));
            assert_eq!(blocks, dense, "token {token}'s embedding");
        }
        assert!(!w.embed(49_152, &mut blocks) && !Q8.weights.embed(49_152, &mut dense));
        let a = compare(
            ours_forward(&mut IN_USE.fork()),
            candle_forward(&mut TRUTH.clone()),
            12,
        );
        assert!(a.least_cosine > 0.99 && a.worst < 0.1, "{a:?}");
        assert_eq!(a.other_choices, 0, "{a:?}");
        let tokens = prompt(300);
        let at_once = IN_USE.fork().forward(&tokens, 0).unwrap();
        let mut pieces = IN_USE.fork();
        pieces.forward(&tokens[..160], 0).unwrap();
        let mut last = Vec::new();
        for (i, t) in tokens.iter().enumerate().skip(160) {
            last = pieces.forward(&[*t], i).unwrap();
        }
        assert!(
            cosine(&last, &at_once) > 0.99,
            "{}",
            cosine(&last, &at_once)
        );
        // The same greedy choice, or a near tie in the whole run's logits: within 0.1 (here,
        // with the output layer's int8 activations, the top two are 22.90 and 22.87 at once,
        // and come out 22.57 and 22.61 in pieces).
        let (mine, theirs) = (argmax(&last) as usize, argmax(&at_once) as usize);
        assert!(
            mine == theirs || at_once[theirs] - at_once[mine] <= 0.1,
            "{mine} ({}) against {theirs} ({})",
            at_once[mine],
            at_once[theirs]
        );
    }

    #[test]
    fn a_prompt_run_in_pieces_gives_what_it_gives_at_once() {
        let tokens = prompt(300);
        let mut whole = F32.fork();
        let at_once = whole.forward(&tokens, 0).unwrap();
        // Three blocks' worth, then a few rows, then one at a time past the cache's first
        // capacity (it doubles from 160).
        let mut pieces = F32.fork();
        pieces.forward(&tokens[..160], 0).unwrap();
        pieces.forward(&tokens[160..163], 160).unwrap();
        let mut last = Vec::new();
        for (i, t) in tokens.iter().enumerate().skip(163) {
            last = pieces.forward(&[*t], i).unwrap();
        }
        assert!(relative_difference(&last, &at_once) < 1e-3);
        assert_eq!(argmax(&last), argmax(&at_once));
        // Rewinding to an earlier position forgets what followed it.
        let rewound = whole.forward(&tokens[100..120], 100).unwrap();
        let mut fresh = F32.fork();
        let direct = fresh.forward(&tokens[..120], 0).unwrap();
        assert!(relative_difference(&rewound, &direct) < 1e-3);
    }

    #[test]
    fn bad_positions_and_tokens_are_errors_that_leave_the_cache_alone() {
        let mut model = F32.fork();
        let tokens = prompt(20);
        let before = model.forward(&tokens, 0).unwrap();
        let err = model.forward(&[1], 25).unwrap_err().to_string();
        assert!(err.contains("past the 20 cached positions"), "{err}");
        let err = model.forward(&[u32::MAX], 20).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
        assert!(model.forward(&[], 20).is_err());
        let err = model.forward(&[1], 4096).unwrap_err().to_string();
        assert!(err.contains("past the 20"), "{err}");
        let mut long = F32.fork();
        let err = long.forward(&vec![1; 4097], 0).unwrap_err().to_string();
        assert!(err.contains("exceed the model's 4096 positions"), "{err}");
        // Nothing above changed the cache: the prompt's next step is what it was.
        let next = argmax(&before);
        let mut again = F32.fork();
        again.forward(&tokens, 0).unwrap();
        assert_eq!(
            model.forward(&[next], 20).unwrap(),
            again.forward(&[next], 20).unwrap()
        );
    }

    /// A tiny llama GGUF written in memory: 64 dimensions, 4 heads sharing 2 key/value heads,
    /// 40 tokens, 96 feed-forward dimensions, 2 blocks, random Q8_0 weights; `shapes`
    /// overrides a weight's `(rows, columns)` in every block (`"output"` adds an output
    /// weight), `blocks` the declared block count.
    #[derive(Clone, Default)]
    struct Tiny {
        shapes: Vec<(&'static str, usize, usize)>,
        heads: Option<u32>,
        blocks: Option<u32>,
    }

    impl Tiny {
        fn file(&self) -> (gguf_file::Content, Cursor<Vec<u8>>) {
            use gguf_file::Value;
            let (h, heads, kv_heads, vocab, inter, blocks, d) = (64, 4, 2, 40, 96, 2, 16);
            let metadata = [
                ("general.architecture", Value::String("llama".into())),
                (
                    "llama.attention.head_count",
                    Value::U32(self.heads.unwrap_or(heads)),
                ),
                ("llama.attention.head_count_kv", Value::U32(kv_heads)),
                ("llama.block_count", Value::U32(self.blocks.unwrap_or(2))),
                ("llama.embedding_length", Value::U32(h as u32)),
                ("llama.rope.dimension_count", Value::U32(d as u32)),
                ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ];
            let mut seed = 1u64;
            let mut matrix = |rows: usize, columns: usize| {
                let values: Vec<f32> = (0..rows * columns)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
                    })
                    .collect();
                let t = Tensor::from_vec(values, (rows, columns), &Device::Cpu).unwrap();
                QTensor::quantize(&t, GgmlDType::Q8_0).unwrap()
            };
            let ones = |n: usize| {
                let t = Tensor::from_vec(vec![1f32; n], n, &Device::Cpu).unwrap();
                QTensor::quantize(&t, GgmlDType::F32).unwrap()
            };
            let shape = |name: &str, default: (usize, usize)| {
                self.shapes
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map_or(default, |&(_, r, c)| (r, c))
            };
            let mut tensors = vec![
                ("token_embd.weight".to_owned(), matrix(vocab, h)),
                ("output_norm.weight".to_owned(), ones(h)),
            ];
            for layer in 0..blocks {
                for (name, default) in [
                    ("attn_q", (heads as usize * d, h)),
                    ("attn_k", (kv_heads as usize * d, h)),
                    ("attn_v", (kv_heads as usize * d, h)),
                    ("attn_output", (h, heads as usize * d)),
                    ("ffn_gate", (inter, h)),
                    ("ffn_up", (inter, h)),
                    ("ffn_down", (h, inter)),
                ] {
                    let (r, c) = shape(name, default);
                    tensors.push((format!("blk.{layer}.{name}.weight"), matrix(r, c)));
                }
                tensors.push((format!("blk.{layer}.attn_norm.weight"), ones(h)));
                tensors.push((format!("blk.{layer}.ffn_norm.weight"), ones(h)));
            }
            if self.shapes.iter().any(|(n, _, _)| *n == "output") {
                let (r, c) = shape("output", (vocab, h));
                tensors.push(("output.weight".to_owned(), matrix(r, c)));
            }
            let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
            let tensors: Vec<(&str, &QTensor)> =
                tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let mut buffer = Cursor::new(Vec::new());
            gguf_file::write(&mut buffer, &metadata, &tensors).unwrap();
            buffer.set_position(0);
            (gguf_file::Content::read(&mut buffer).unwrap(), buffer)
        }

        fn load(&self, dtype: GgmlDType, max_positions: usize) -> Result<Option<LlamaModel>> {
            let (content, mut buffer) = self.file();
            let products = Products {
                dtype,
                pad: false,
                q4: false,
            };
            LlamaModel::load_with(&content, &mut buffer, false, max_positions, products)
        }
    }

    #[test]
    fn malformed_files_are_load_errors_not_panics_or_nonsense() {
        // Found by a review: each of these loaded, then panicked at the first request (a
        // narrow attention output) or computed from truncated rows.
        type Shapes = &'static [(&'static str, usize, usize)];
        let cases: [(Shapes, &str); 6] = [
            (&[("attn_output", 64, 32)], "attn_output.weight is [64, 32]"),
            (
                &[("attn_q", 64, 32), ("attn_k", 32, 32), ("attn_v", 32, 32)],
                "attn_q.weight is [64, 32]",
            ),
            (&[("output", 40, 32)], "output.weight is [40, 32]"),
            (
                &[("ffn_gate", 64, 64), ("ffn_up", 128, 64)],
                "ffn_up.weight is [128, 64]",
            ),
            (
                &[("attn_k", 48, 64), ("attn_v", 16, 64)],
                "attn_k.weight is [48, 64]",
            ),
            (&[("output", 48, 64)], "output.weight is [48, 64]"),
        ];
        for (shapes, expected) in cases {
            let tiny = Tiny {
                shapes: shapes.to_vec(),
                ..Tiny::default()
            };
            match tiny.load(GgmlDType::Q8_0, 64) {
                Err(e) => assert!(e.to_string().contains(expected), "{e}"),
                Ok(_) => panic!("{shapes:?} loaded"),
            }
        }
        for heads in [0, 3] {
            let tiny = Tiny {
                heads: Some(heads),
                ..Tiny::default()
            };
            assert!(tiny.load(GgmlDType::Q8_0, 64).is_err(), "{heads} heads");
        }
        // A declared block count in the billions is refused before anything is sized by it.
        let tiny = Tiny {
            blocks: Some(u32::MAX),
            ..Tiny::default()
        };
        let err = tiny.load(GgmlDType::Q8_0, 64).err().unwrap().to_string();
        assert!(err.contains("declares 4294967295 blocks"), "{err}");
        // The well-formed file loads and runs.
        let mut model = Tiny::default().load(GgmlDType::Q8_0, 64).unwrap().unwrap();
        assert_eq!(model.forward(&[1, 2, 3], 0).unwrap().len(), 40);
    }

    #[test]
    fn continuations_rewinds_and_growth_match_a_single_run() {
        let base = Tiny::default().load(GgmlDType::F32, 1024).unwrap().unwrap();
        let tokens: Vec<u32> = (0..400).map(|i| ((i * 7 + 3) % 40) as u32).collect();
        let want = base.fork().forward(&tokens, 0).unwrap();
        // A prefix, 300 rows after it (three query blocks past position 0), then one at a time.
        let mut pieces = base.fork();
        pieces.forward(&tokens[..50], 0).unwrap();
        pieces.forward(&tokens[50..350], 50).unwrap();
        let mut got = Vec::new();
        for i in 350..400 {
            got = pieces.forward(&tokens[i..=i], i).unwrap();
        }
        assert!(relative_difference(&got, &want) < 1e-5);
        // A rewind that also grows the cache past its first capacity.
        let mut rewound = base.fork();
        rewound.forward(&tokens[..10], 0).unwrap();
        let got = rewound.forward(&tokens[5..300], 5).unwrap();
        let want = base.fork().forward(&tokens[..300], 0).unwrap();
        assert!(relative_difference(&got, &want) < 1e-5);
        // Other tokens written past the rewind point are forgotten.
        let mut overwritten = base.fork();
        overwritten.forward(&tokens[..10], 0).unwrap();
        overwritten.forward(&[9; 30], 10).unwrap();
        let got = overwritten.forward(&tokens[10..13], 10).unwrap();
        let want = base.fork().forward(&tokens[..13], 0).unwrap();
        assert!(relative_difference(&got, &want) < 1e-5);
        // The last position runs; the one after is an error.
        let mut full = base.fork();
        full.forward(&vec![1; 1023], 0).unwrap();
        full.forward(&[1], 1023).unwrap();
        assert!(full.forward(&[1], 1024).is_err());
    }
}
