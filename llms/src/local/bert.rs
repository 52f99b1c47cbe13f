//! A BERT encoder for sentence embedding on the CPU, faster than candle's `BertModel` for the
//! same numbers.
//!
//! The dense layers stay candle matrix products (gemm); everything between them runs as a few
//! fused passes over plain `f32` slices, in place on the product's output where it can:
//! bias + activation, bias + residual + LayerNorm, and attention per sequence over its real
//! tokens only. The batch is *packed*: the tokens of every sequence follow each other in one
//! `[tokens, hidden]` matrix with no padding rows at all, so no work is spent on padding and a
//! sequence's vectors cannot depend on its neighbours.

use candle_core::{
    bail, CpuStorage, DType, Error as CandleError, InplaceOp1, InplaceOp2, Layout, Result, Tensor,
};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

/// A LayerNorm's parameters.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// One transformer layer; the weights are `[out, in]` as stored, multiplied transposed.
struct Layer {
    /// Query, key and value weights stacked (`[3 * hidden, hidden]`): one product instead of
    /// three.
    qkv_weight: Tensor,
    qkv_bias: Vec<f32>,
    attention_out_weight: Tensor,
    attention_out_bias: Vec<f32>,
    attention_norm: Norm,
    intermediate_weight: Tensor,
    intermediate_bias: Vec<f32>,
    output_weight: Tensor,
    output_bias: Vec<f32>,
    output_norm: Norm,
}

/// The shape of the attention, shared by every layer.
#[derive(Clone, Copy)]
struct Heads {
    hidden: usize,
    count: usize,
    size: usize,
}

/// A BERT encoder (embeddings and transformer layers, no pooler) for packed batches.
pub(crate) struct BertEncoder {
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// The token-type-0 row: sentence embedding gives every token type 0.
    token_type_embedding: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: Heads,
    activation: HiddenAct,
}

impl BertEncoder {
    /// Loads the weights candle's `BertModel::load` loads, under the same names and with the
    /// same prefix fallbacks (`bert.`, then `{model_type}.`).
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        check_config(config)?;
        let vb = if vb.contains_tensor("bert") {
            vb.pp("bert")
        } else {
            vb
        };
        match Self::load_at(&vb, config) {
            Ok(model) => Ok(model),
            Err(err) => match &config.model_type {
                Some(model_type) => Self::load_at(&vb.pp(model_type), config).map_err(|_| err),
                None => Err(err),
            },
        }
    }

    fn load_at(vb: &VarBuilder, config: &Config) -> Result<Self> {
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let token_types = emb
            .pp("token_type_embeddings")
            .get((config.type_vocab_size, h), "weight")?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| load_layer(&vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings: flat(
                &emb.pp("word_embeddings")
                    .get((config.vocab_size, h), "weight")?,
            )?,
            position_embeddings: flat(
                &emb.pp("position_embeddings")
                    .get((config.max_position_embeddings, h), "weight")?,
            )?,
            token_type_embedding: flat(&token_types.get(0)?)?,
            embedding_norm: load_norm(&emb.pp("LayerNorm"), config)?,
            layers,
            heads: Heads {
                hidden: h,
                count: config.num_attention_heads,
                size: h / config.num_attention_heads,
            },
            activation: config.hidden_act,
        })
    }

    /// The width of the output vectors.
    pub(crate) fn hidden_size(&self) -> usize {
        self.heads.hidden
    }

    /// Encodes `sequences` (token ids, special tokens included) and returns the last hidden
    /// states packed: the rows of `sequences[0]`, then those of `sequences[1]`… (`[Σ lengths,
    /// hidden]`, row-major).
    pub(crate) fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let tokens: usize = lengths.iter().sum();
        if tokens == 0 {
            return Ok(Vec::new());
        }
        let h = self.heads.hidden;
        let mut x = Tensor::from_vec(
            self.embed(sequences)?,
            (tokens, h),
            &candle_core::Device::Cpu,
        )?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &lengths)?;
        }
        x.flatten_all()?.to_vec1()
    }

    /// Word + position + token-type embeddings, then LayerNorm.
    fn embed(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.heads.hidden;
        let mut out = Vec::with_capacity(sequences.iter().map(|s| s.len()).sum::<usize>() * h);
        for sequence in sequences {
            for (position, &id) in sequence.iter().enumerate() {
                let word = row(&self.word_embeddings, id as usize, h).ok_or_else(|| {
                    CandleError::Msg(format!("token id {id} is out of the vocabulary"))
                })?;
                let pos = row(&self.position_embeddings, position, h).ok_or_else(|| {
                    CandleError::Msg(format!("position {position} is past the model's maximum"))
                })?;
                out.extend(
                    word.iter()
                        .zip(pos)
                        .zip(&self.token_type_embedding)
                        .map(|((w, p), t)| w + t + p),
                );
            }
        }
        let norm = &self.embedding_norm;
        par_rows(&mut out, h, |r| layer_norm(r, norm));
        Ok(out)
    }

    fn layer_forward(&self, layer: &Layer, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let tokens = x.dim(0)?;
        let qkv = x.matmul(&layer.qkv_weight.t()?)?;
        qkv.inplace_op1(&QkvBias {
            bias: &layer.qkv_bias,
            heads: self.heads,
        })?;
        let context = attention(&qkv, lengths, self.heads)?;
        let context = Tensor::from_vec(context, (tokens, self.heads.hidden), x.device())?;

        let attended = context.matmul(&layer.attention_out_weight.t()?)?;
        attended.inplace_op2(
            x,
            &AddNorm {
                bias: &layer.attention_out_bias,
                norm: &layer.attention_norm,
            },
        )?;

        let intermediate = attended.matmul(&layer.intermediate_weight.t()?)?;
        intermediate.inplace_op1(&BiasActivation {
            bias: &layer.intermediate_bias,
            activation: self.activation,
        })?;

        let output = intermediate.matmul(&layer.output_weight.t()?)?;
        output.inplace_op2(
            &attended,
            &AddNorm {
                bias: &layer.output_bias,
                norm: &layer.output_norm,
            },
        )?;
        Ok(output)
    }
}

/// Refuses configurations this encoder would compute wrongly.
fn check_config(config: &Config) -> Result<()> {
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        bail!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size,
            config.num_attention_heads
        );
    }
    if config.hidden_size == 0 {
        bail!("hidden_size is 0");
    }
    if config.type_vocab_size == 0 {
        bail!("type_vocab_size is 0: there is no token type 0 to embed");
    }
    // `position_embedding_type` has a single value in candle's config ("absolute"): any other
    // fails to parse, so it needs no check here.
    Ok(())
}

fn load_layer(vb: &VarBuilder, config: &Config) -> Result<Layer> {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let attention = vb.pp("attention");
    let own = attention.pp("self");
    let (q_w, q_b) = load_linear(&own.pp("query"), h, h)?;
    let (k_w, k_b) = load_linear(&own.pp("key"), h, h)?;
    let (v_w, v_b) = load_linear(&own.pp("value"), h, h)?;
    let (attention_out_weight, attention_out_bias) =
        load_linear(&attention.pp("output.dense"), h, h)?;
    let (intermediate_weight, intermediate_bias) = load_linear(&vb.pp("intermediate.dense"), h, i)?;
    let (output_weight, output_bias) = load_linear(&vb.pp("output.dense"), i, h)?;
    Ok(Layer {
        qkv_weight: Tensor::cat(&[&q_w, &k_w, &v_w], 0)?,
        qkv_bias: [q_b, k_b, v_b].concat(),
        attention_out_weight,
        attention_out_bias,
        attention_norm: load_norm(&attention.pp("output.LayerNorm"), config)?,
        intermediate_weight,
        intermediate_bias,
        output_weight,
        output_bias,
        output_norm: load_norm(&vb.pp("output.LayerNorm"), config)?,
    })
}

/// A dense layer's `[out, in]` weight and its bias.
fn load_linear(vb: &VarBuilder, inputs: usize, outputs: usize) -> Result<(Tensor, Vec<f32>)> {
    let weight = vb.get((outputs, inputs), "weight")?;
    let bias = flat(&vb.get(outputs, "bias")?)?;
    Ok((weight, bias))
}

/// A LayerNorm, named `weight`/`bias` or (older exports) `gamma`/`beta`, as candle-nn accepts.
fn load_norm(vb: &VarBuilder, config: &Config) -> Result<Norm> {
    let h = config.hidden_size;
    let weight_name = if vb.contains_tensor("gamma") && !vb.contains_tensor("weight") {
        "gamma"
    } else {
        "weight"
    };
    let bias_name = if vb.contains_tensor("beta") && !vb.contains_tensor("bias") {
        "beta"
    } else {
        "bias"
    };
    Ok(Norm {
        weight: flat(&vb.get(h, weight_name)?)?,
        bias: flat(&vb.get(h, bias_name)?)?,
        eps: config.layer_norm_eps as f32,
    })
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// Row `i` of a row-major matrix `width` wide, if there is one.
fn row(data: &[f32], i: usize, width: usize) -> Option<&[f32]> {
    data.get(i.checked_mul(width)?..(i + 1).checked_mul(width)?)
}

/// The elements a contiguous layout covers.
pub(super) fn contiguous<'a>(data: &'a [f32], layout: &Layout) -> Result<&'a [f32]> {
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| data.get(start..end))
        .ok_or_else(|| CandleError::Msg("expected a contiguous tensor".into()))
}

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("the BERT encoder computes in f32");
    };
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| data.get_mut(start..end))
        .ok_or_else(|| CandleError::Msg("expected a contiguous tensor".into()))
}

/// Threads for the fused passes, read once: `CANDLE_NUM_THREADS`, then `RAYON_NUM_THREADS`,
/// then candle's default (the physical cores), as the module docs describe, so that
/// `CANDLE_NUM_THREADS=1` keeps them on the calling thread.
pub(super) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"]
            .iter()
            .find_map(|var| {
                std::env::var(var)
                    .ok()
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .filter(|&n| n > 0)
            })
            .unwrap_or_else(candle_core::utils::get_num_threads)
    })
}

/// Runs `work(i, part)` for each of `parts` on candle's barrier pool, the calling thread
/// included. Its threads spin between calls, so the many short products and attentions of a
/// decoded token do not wait for sleeping threads to wake, as they would on rayon's pool
/// from a thread outside it. Each part is behind its own (uncontended) lock.
pub(super) fn each_on_pool<'a>(
    parts: impl Iterator<Item = &'a mut [f32]>,
    work: impl Fn(usize, &mut [f32]) + Sync,
) {
    let parts: Vec<std::sync::Mutex<&mut [f32]>> = parts.map(std::sync::Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(parts.len(), |range| {
        for i in range {
            let mut part = parts[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(i, &mut part);
        }
    });
}

/// Rows per parallel task: a few tasks per thread to even out the load.
fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(threads() * 4).max(1)
}

/// Applies `f` to each `width`-long row of `data`, in parallel when there are threads.
pub(super) fn par_rows(data: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    if width == 0 {
        return;
    }
    let rows = data.len() / width;
    if threads() <= 1 || rows < 2 {
        data.chunks_mut(width).for_each(f);
    } else {
        data.par_chunks_mut(rows_per_task(rows) * width)
            .for_each(|chunk| chunk.chunks_mut(width).for_each(&f));
    }
}

/// [`par_rows`] over two matrices of the same shape, row by row.
fn par_rows2(data: &mut [f32], other: &[f32], width: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if width == 0 {
        return;
    }
    let rows = data.len() / width;
    let each = |(a, b): (&mut [f32], &[f32])| {
        a.chunks_mut(width)
            .zip(b.chunks(width))
            .for_each(|(a, b)| f(a, b))
    };
    if threads() <= 1 || rows < 2 {
        each((data, other));
    } else {
        let step = rows_per_task(rows) * width;
        data.par_chunks_mut(step)
            .zip(other.par_chunks(step))
            .for_each(each);
    }
}

/// `x ← LayerNorm(x)`, two passes (mean, then variance) as candle and PyTorch compute it.
fn layer_norm(x: &mut [f32], norm: &Norm) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let variance = squared_deviations(x, mean) / n;
    let scale = 1.0 / (variance + norm.eps).sqrt();
    for ((v, w), b) in x.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = (*v - mean) * scale * w + b;
    }
}

/// `x ← LayerNorm(x + bias + residual)`, in place on a dense layer's output.
struct AddNorm<'a> {
    bias: &'a [f32],
    norm: &'a Norm,
}

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "bert-add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let x = contiguous_mut(s1, l1)?;
        let residual = contiguous(s2.as_slice::<f32>()?, l2)?;
        if x.len() != residual.len() {
            bail!("bert-add-norm: shapes differ");
        }
        par_rows2(x, residual, self.bias.len(), |x, residual| {
            for ((v, b), r) in x.iter_mut().zip(self.bias).zip(residual) {
                *v += b + r;
            }
            layer_norm(x, self.norm);
        });
        Ok(())
    }
}

/// `x ← activation(x + bias)`, in place on the intermediate dense layer's output.
struct BiasActivation<'a> {
    bias: &'a [f32],
    activation: HiddenAct,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bert-bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = contiguous_mut(storage, layout)?;
        let activation = self.activation;
        par_rows(x, self.bias.len(), |x| {
            let pairs = x.iter_mut().zip(self.bias);
            // One loop per activation so each one vectorises.
            match activation {
                HiddenAct::Gelu => pairs.for_each(|(v, b)| *v = gelu_erf(*v + b)),
                HiddenAct::GeluApproximate => pairs.for_each(|(v, b)| *v = gelu_tanh(*v + b)),
                HiddenAct::Relu => pairs.for_each(|(v, b)| *v = (*v + b).max(0.0)),
            }
        });
        Ok(())
    }
}

/// Exact GELU, `x Φ(x) = x (1 + erf(x / √2)) / 2` (PyTorch's default `gelu`).
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The tanh approximation of GELU, as candle's `gelu` computes it.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// `erf(x)` to 5e-7 absolute (4.5e-7 measured over [-10, 10]), branch-free so that loops over it vectorise (libm's `erff`
/// is a function call per element and was a tenth of the encoder's time).
///
/// A rational approximation of odd degree 13 over even degree 8 on [-4, 4] (the one Eigen and
/// XLA use); beyond ±4, erf is ±1 in `f32`.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_6e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

/// `exp(x)` for `x ≤ 0` to about 2 ulp, branch-free (Cephes' `expf` polynomial) so that the
/// softmax loop vectorises. Arguments below -87 are taken as -87 (giving about 1.6e-38, where
/// `f32` runs out of normal numbers) and positive ones as 0; NaN stays NaN.
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `x - n ln 2` is exact in f32.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5 * 2^23 rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    // `clamp` keeps a NaN (where `max` would turn it into the bound).
    let x = x.clamp(-87.0, 0.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n from the exponent bits. `t`'s low mantissa bits hold n (as n + ROUND's bits), read
    // with integer arithmetic: an `as i32` conversion would not vectorise. n is in [-126, 0].
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e * two_n
}

/// The largest element (−∞ for none), with eight partial maxima so that it vectorises.
pub(super) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// `Σ (x - mean)²`, vectorised as [`sum`] is.
fn squared_deviations(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - mean) * (v - mean);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sums with eight partial sums, which the compiler keeps in vector registers.
pub(super) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `[q k v] ← [(q + b_q) / √d, k + b_k, v + b_v]`, in place on the QKV product: the biases,
/// and the attention's `1/√d` scale applied once to the queries instead of to every score.
struct QkvBias<'a> {
    bias: &'a [f32],
    heads: Heads,
}

impl InplaceOp1 for QkvBias<'_> {
    fn name(&self) -> &'static str {
        "bert-qkv-bias"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = contiguous_mut(storage, layout)?;
        let h = self.heads.hidden;
        let scale = 1.0 / (self.heads.size as f32).sqrt();
        par_rows(x, 3 * h, |row| {
            let (q, kv) = row.split_at_mut(h.min(row.len()));
            let (q_bias, kv_bias) = self.bias.split_at(h.min(self.bias.len()));
            for (v, b) in q.iter_mut().zip(q_bias) {
                *v = (*v + b) * scale;
            }
            for (v, b) in kv.iter_mut().zip(kv_bias) {
                *v += b;
            }
        });
        Ok(())
    }
}

/// `x ← softmax(x)` over each row, in place on the attention scores.
struct Softmax {
    width: usize,
}

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "bert-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = contiguous_mut(storage, layout)?;
        par_rows(x, self.width, |row| {
            // Subtracting the maximum keeps every exponent ≤ 0: no overflow.
            let max = max(row);
            row.iter_mut().for_each(|s| *s = exp_nonpositive(*s - max));
            let inv = 1.0 / sum(row);
            row.iter_mut().for_each(|s| *s *= inv);
        });
        Ok(())
    }
}

/// Multi-head self-attention over packed sequences: `qkv` is `[tokens, 3 * hidden]` (queries,
/// keys and values with their biases, queries scaled, see [`QkvBias`]), `lengths` the
/// sequences' lengths in order. Returns the context, `[tokens, hidden]`, each head in its
/// columns.
///
/// Each sequence attends over its own tokens only (no padding, no mask): two batched matrix
/// products over the heads of strided views of `qkv`, so no transposed copies either.
fn attention(qkv: &Tensor, lengths: &[usize], heads: Heads) -> Result<Vec<f32>> {
    let (h, d, n) = (heads.hidden, heads.size, heads.count);
    let tokens: usize = lengths.iter().sum();
    let mut context = vec![0.0f32; tokens * h];
    let mut rest = context.as_mut_slice();
    let mut start = 0;
    for &len in lengths {
        let (out, tail) = rest.split_at_mut((len * h).min(rest.len()));
        rest = tail;
        if len == 0 {
            continue;
        }
        // [len, 3h] → [len, 3, heads, d]; q, k, v are [heads, len, d] views of it.
        let seq = qkv.narrow(0, start, len)?.reshape((len, 3, n, d))?;
        let part =
            |i: usize| -> Result<Tensor> { seq.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1) };
        let scores = part(0)?.matmul(&part(1)?.t()?)?; // [heads, len, len]
        scores.inplace_op1(&Softmax { width: len })?;
        let heads_context = scores.matmul(&part(2)?)?; // [heads, len, d]
        scatter_heads(&heads_context, out, heads)?;
        start += len;
    }
    Ok(context)
}

/// Copies a `[heads, len, d]` context into the sequence's `[len, heads * d]` rows.
fn scatter_heads(heads_context: &Tensor, out: &mut [f32], heads: Heads) -> Result<()> {
    let (storage, layout) = heads_context.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        bail!("the BERT encoder runs on the CPU only");
    };
    let src = contiguous(cpu.as_slice::<f32>()?, layout)?;
    let (h, d) = (heads.hidden, heads.size);
    if d == 0 {
        return Ok(());
    }
    let len = out.len() / h.max(1);
    for (head, block) in src.chunks_exact(len * d).enumerate() {
        for (row, values) in out.chunks_exact_mut(h).zip(block.chunks_exact(d)) {
            if let Some(dst) = row.get_mut(head * d..(head + 1) * d) {
                dst.copy_from_slice(values);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 from its everywhere-positive series
    /// `erf x = 2/√π e^{-x²} Σ 2ⁿ x^{2n+1} / (2n+1)!!`: no cancellation, so accurate to ~1e-15
    /// over [-10, 10].
    fn erf_reference(x: f64) -> f64 {
        let (mut term, mut total, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * total.abs() {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            total += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * total
    }

    #[test]
    fn fast_erf_is_within_5e7_of_the_reference() {
        assert!((erf_reference(1.0) - 0.842_700_792_949_714_9).abs() < 1e-14);
        let mut worst: f64 = 0.0;
        for i in -200_000..=200_000 {
            let x = (i as f64 * 5e-5) as f32;
            worst = worst.max((erf(x) as f64 - erf_reference(x as f64)).abs());
        }
        println!("max |erf error| over [-10, 10]: {worst:e}");
        assert!(worst < 5e-7, "{worst}");
    }

    #[test]
    fn fast_exp_is_within_2_ulp() {
        let mut worst: f64 = 0.0;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            worst = worst.max((exp_nonpositive(x) as f64 - exact).abs() / exact);
        }
        assert!(worst < 2.5e-7, "{worst}");
        assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
        // Outside its domain: NaN stays NaN (a broken score must not become a weight), and
        // positive arguments are taken as 0.
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert_eq!(exp_nonpositive(5.0), 1.0);
        assert_eq!(exp_nonpositive(f32::INFINITY), 1.0);
    }

    fn layer_norm_reference(x: &[f32], norm: &Norm) -> Vec<f32> {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        x.iter()
            .zip(&norm.weight)
            .zip(&norm.bias)
            .map(|((&v, &w), &b)| {
                ((v as f64 - mean) / (var + norm.eps as f64).sqrt() * w as f64 + b as f64) as f32
            })
            .collect()
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
            })
            .collect()
    }

    #[test]
    fn fused_add_norm_matches_a_plain_layer_norm() {
        let (rows, h) = (37, 48);
        let norm = Norm {
            weight: noise(h, 1),
            bias: noise(h, 2),
            eps: 1e-12,
        };
        let bias = noise(h, 3);
        let x: Vec<f32> = noise(rows * h, 4).iter().map(|v| v * 3.0 + 0.5).collect();
        let residual = noise(rows * h, 5);
        let t = Tensor::from_vec(x.clone(), (rows, h), &candle_core::Device::Cpu).unwrap();
        let r = Tensor::from_vec(residual.clone(), (rows, h), &candle_core::Device::Cpu).unwrap();
        t.inplace_op2(
            &r,
            &AddNorm {
                bias: &bias,
                norm: &norm,
            },
        )
        .unwrap();
        let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..rows {
            let sum: Vec<f32> = (0..h)
                .map(|j| x[i * h + j] + bias[j] + residual[i * h + j])
                .collect();
            let want = layer_norm_reference(&sum, &norm);
            for j in 0..h {
                assert!((got[i * h + j] - want[j]).abs() < 1e-5, "row {i} col {j}");
            }
        }
    }

    /// Attention computed the textbook way for one sequence (all biases, softmax with `exp`).
    fn attention_reference(qkv: &[f32], bias: &[f32], len: usize, heads: Heads) -> Vec<f32> {
        let (h, d) = (heads.hidden, heads.size);
        let at = |t: usize, c: usize| (qkv[t * 3 * h + c] + bias[c]) as f64;
        let mut out = vec![0.0f32; len * h];
        for head in 0..heads.count {
            for i in 0..len {
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        (0..d)
                            .map(|c| at(i, head * d + c) * at(j, h + head * d + c))
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let v: f64 = (0..len)
                        .map(|j| e[j] / z * at(j, 2 * h + head * d + c))
                        .sum();
                    out[i * h + head * d + c] = v as f32;
                }
            }
        }
        out
    }

    /// The fused QKV bias pass then the attention, on a `[tokens, 3h]` product.
    fn attention_of(qkv: &[f32], bias: &[f32], lengths: &[usize], heads: Heads) -> Vec<f32> {
        let tokens: usize = lengths.iter().sum();
        let t = Tensor::from_vec(
            qkv.to_vec(),
            (tokens, 3 * heads.hidden),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        t.inplace_op1(&QkvBias { bias, heads }).unwrap();
        attention(&t, lengths, heads).unwrap()
    }

    #[test]
    fn packed_attention_equals_each_sequence_alone() {
        let heads = Heads {
            hidden: 24,
            count: 3,
            size: 8,
        };
        let h = heads.hidden;
        let lengths = [21, 3, 1, 17];
        let tokens: usize = lengths.iter().sum();
        let qkv: Vec<f32> = noise(tokens * 3 * h, 7).iter().map(|v| v * 2.0).collect();
        let bias = noise(3 * h, 8);
        let packed = attention_of(&qkv, &bias, &lengths, heads);
        let mut start = 0;
        for &len in &lengths {
            let own = &qkv[start * 3 * h..(start + len) * 3 * h];
            let alone = attention_of(own, &bias, &[len], heads);
            let reference = attention_reference(own, &bias, len, heads);
            let got = &packed[start * h..(start + len) * h];
            for ((g, a), r) in got.iter().zip(&alone).zip(&reference) {
                assert!((g - a).abs() < 1e-6, "packed {g} differs from alone {a}");
                assert!((g - r).abs() < 1e-5, "{g} vs reference {r}");
            }
            start += len;
        }
    }
}
