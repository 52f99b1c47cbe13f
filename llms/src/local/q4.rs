//! Products of 4-bit weights (a GGUF file's Q4_0 and Q4_1 blocks, read as they are) with one
//! row of activations: the decoder's one-token steps, which read every weight once per token
//! and so are bound by how many bytes the weights take.
//!
//! A block is 32 weights `d·q + m` with `q` in `0..16`; Q4_0's `m` is `-8d`. The activations are
//! quantized per block of 32 to int8 with a scale, and their sum kept (llama.cpp's Q8_1), so a
//! block's product is `d_w·d_x·Σ q_w·q_x + m_w·d_x·Σ q_x`: integer multiply-adds
//! (`vpmaddubsw`, `vpmaddwd` on AVX2) and two terms per block for the scales. Weights take
//! 0.625 byte each (the file's nibbles, and its f16 `d` and `m`), against 1.06 for Q8_0;
//! SmolLM2-135M reads 70 MB of layer weights a token instead of 141 MB. The kernel prefetches
//! the nibbles of the rows ahead (without, decoding ran 178 tokens/s instead of 211; with the
//! scales and offsets prefetched too, 189) and runs one contiguous part of the rows per thread.
//!
//! ```text
//! let w = Q4Matrix::new(&[&q, &k, &v])?;   // Some when every part is Q4_0 or Q4_1
//! let y = w.forward(&x);                   // x W^T, for one row x
//! ```

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};
use half::f16;

/// Weights per block.
pub(super) const BLOCK: usize = 32;
/// Rows below which a product runs on one thread.
const PARALLEL_ROWS: usize = 64;
/// Rows ahead whose weights are prefetched.
pub(super) const AHEAD: usize = 12;

/// A weight matrix `[outputs, inputs]` of 4-bit blocks, rows stacked from one or more parts.
/// Each row's blocks are stored in pairs: byte `j` of pair `p` holds weight `j` of block `2p`
/// in its low nibble and weight `j` of block `2p + 1` in its high nibble, so one 32-byte load
/// yields two blocks with a mask and a shift (a row with an odd number of blocks gets a zero
/// block, `d = m = 0`, that adds nothing).
pub(crate) struct Q4Matrix {
    outputs: usize,
    inputs: usize,
    /// Pairs of blocks per row.
    pairs: usize,
    /// `[outputs][pairs]`.
    nibbles: Vec<[u8; 32]>,
    /// `d` of every block as the file has it (f16 bits), `[outputs][scale_stride]`: zeros
    /// after a row's blocks up to a multiple of 8, for whole-vector loads.
    scales: Vec<u16>,
    /// `m` of every block (f16 bits; Q4_0's `-8d` is exact in f16), laid out as `scales`.
    mins: Vec<u16>,
}

/// One row of activations quantized per block: `x ≈ scale·q`, with `sum = scale·Σq`; the
/// scales and sums have zeros up to a multiple of 8 blocks, for whole-vector loads.
pub(super) struct Q8Row {
    pub(super) quants: Vec<[i8; 32]>,
    pub(super) scales: Vec<f32>,
    pub(super) sums: Vec<f32>,
}

impl Q4Matrix {
    /// Stacks `parts` (each `[outputs_i, inputs]`, the same `inputs`) into one matrix, or
    /// `None` when a part is neither Q4_0 nor Q4_1 or its rows are not whole blocks.
    ///
    /// # Errors
    /// A part whose bytes do not match its shape.
    pub(crate) fn new(parts: &[&QTensor]) -> Result<Option<Self>> {
        let Some(first) = parts.first() else {
            return Ok(None);
        };
        let inputs = match first.shape().dims() {
            [_, inputs] => *inputs,
            _ => return Ok(None),
        };
        if inputs == 0 || !inputs.is_multiple_of(BLOCK) {
            return Ok(None);
        }
        let blocks = inputs / BLOCK;
        let pairs = blocks.div_ceil(2);
        let mut matrix = Self {
            outputs: 0,
            inputs,
            pairs,
            nibbles: Vec::new(),
            scales: Vec::new(),
            mins: Vec::new(),
        };
        for part in parts {
            let (rows, width) = match part.shape().dims() {
                [rows, width] => (*rows, *width),
                _ => return Ok(None),
            };
            let block_bytes = match part.dtype() {
                GgmlDType::Q4_0 => 18,
                GgmlDType::Q4_1 => 20,
                _ => return Ok(None),
            };
            if width != inputs {
                return Ok(None);
            }
            let Some(bytes) = rows
                .checked_mul(blocks)
                .and_then(|n| n.checked_mul(block_bytes))
            else {
                return Ok(None);
            };
            let data: Cow<'_, [u8]> = part.data()?;
            if data.len() != bytes {
                bail!(
                    "a {:?} tensor of {rows} × {width} holds {} bytes",
                    part.dtype(),
                    data.len()
                );
            }
            matrix.nibbles.reserve(rows * pairs);
            matrix
                .scales
                .reserve(rows * (2 * pairs).next_multiple_of(8));
            matrix.mins.reserve(rows * (2 * pairs).next_multiple_of(8));
            for row in data.chunks_exact(blocks * block_bytes) {
                let mut values = [[0u8; 32]; 2];
                for (b, block) in row.chunks_exact(block_bytes).enumerate() {
                    let d = f16::from_le_bytes([block[0], block[1]]);
                    let (m, quants) = if block_bytes == 20 {
                        (f16::from_le_bytes([block[2], block[3]]), &block[4..])
                    } else {
                        // -8d is d with its exponent raised by 3 and its sign flipped: exact
                        // unless it overflows f16 (then the check below leaves the weight to
                        // the Q8_0 products, as it does a NaN or infinite scale).
                        (-(d * f16::from_f32(8.0)), &block[2..])
                    };
                    if !d.is_finite() || !m.is_finite() {
                        return Ok(None);
                    }
                    matrix.scales.push(d.to_bits());
                    matrix.mins.push(m.to_bits());
                    // Weight j is the low nibble of byte j, weight j + 16 the high one.
                    let v = &mut values[b % 2];
                    for (j, &byte) in quants.iter().enumerate() {
                        v[j] = byte & 0x0F;
                        v[j + 16] = byte >> 4;
                    }
                    if b % 2 == 1 || b + 1 == blocks {
                        if b % 2 == 0 {
                            values[1] = [0; 32];
                            matrix.scales.push(0);
                            matrix.mins.push(0);
                        }
                        let mut pair = [0u8; 32];
                        for (j, p) in pair.iter_mut().enumerate() {
                            *p = values[0][j] | (values[1][j] << 4);
                        }
                        matrix.nibbles.push(pair);
                    }
                }
                let padded = (2 * pairs).next_multiple_of(8);
                matrix
                    .scales
                    .resize(matrix.scales.len() + padded - 2 * pairs, 0);
                matrix
                    .mins
                    .resize(matrix.mins.len() + padded - 2 * pairs, 0);
            }
            matrix.outputs += rows;
        }
        Ok(Some(matrix))
    }

    /// Whether this CPU runs the SIMD kernel (AVX2 with FMA); elsewhere the portable one is
    /// slower than the Q8_0 products it would replace.
    pub(crate) fn fast() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            pulp::x86::V3::try_new().is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Input width.
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output count.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x W^T` for one row `x` (its first [`Q4Matrix::inputs`] values; more are ignored):
    /// `outputs` values. Large products run on candle's barrier pool, as its own products do
    /// (see [`super::bert::each_on_pool`]).
    ///
    /// # Errors
    /// A row shorter than the inputs.
    pub(crate) fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        one_row_product(
            self.outputs,
            self.inputs,
            self.pairs,
            x,
            |row, first, out| self.rows(row, first, out),
        )
    }

    /// Rows `first..first + out.len()` of the product with `x`.
    fn rows(&self, x: &Q8Row, first: usize, out: &mut [f32]) {
        let p = self.pairs;
        let stride = (2 * p).next_multiple_of(8);
        let row = |r: usize| {
            (
                &self.nibbles[r * p..(r + 1) * p],
                &self.scales[r * stride..(r + 1) * stride],
                &self.mins[r * stride..(r + 1) * stride],
            )
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            simd.vectorize(
                #[inline(always)]
                || {
                    for (i, o) in out.iter_mut().enumerate() {
                        let r = first + i;
                        // The nibbles only: prefetching the scales and offsets too (two more
                        // lines a row, which the hardware's own prefetcher streams anyway) cost
                        // 10 % of the tokens a second (189 against 211).
                        avx2::prefetch(simd, &self.nibbles, (r + AHEAD) * p, p * 32);
                        let (nibbles, scales, mins) = row(r);
                        *o = avx2::dot(simd, nibbles, scales, mins, x);
                    }
                },
            );
            return;
        }
        for (i, o) in out.iter_mut().enumerate() {
            let (nibbles, scales, mins) = row(first + i);
            *o = dot(nibbles, scales, mins, x);
        }
    }
}

/// The frame of a product with one row `x` (its first `inputs` values; more are ignored):
/// quantizes them per block into `pairs` pairs of blocks, then has `rows(x, first, out)` fill
/// `out` with rows `first..` of the product. Large products run on candle's barrier pool, as its
/// own products do (see [`super::bert::each_on_pool`]), one contiguous part per thread (a
/// shared cursor over smaller tasks was 10 % slower: each thread's prefetches run ahead within
/// its own rows); a pool with fewer threads takes several parts per thread.
///
/// # Errors
/// A row shorter than `inputs`.
pub(super) fn one_row_product(
    outputs: usize,
    inputs: usize,
    pairs: usize,
    x: &[f32],
    rows: impl Fn(&Q8Row, usize, &mut [f32]) + Sync,
) -> Result<Vec<f32>> {
    let Some(x) = x.get(..inputs) else {
        bail!("{} activations for a product of {inputs} inputs", x.len());
    };
    #[cfg(target_arch = "x86_64")]
    let row = match pulp::x86::V3::try_new() {
        Some(simd) => simd.vectorize(
            #[inline(always)]
            || avx2::quantize(simd, x, pairs),
        ),
        None => quantize(x, pairs),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let row = quantize(x, pairs);
    let mut out = vec![0f32; outputs];
    let threads = super::bert::threads();
    if outputs >= PARALLEL_ROWS && threads > 1 {
        let part = outputs.div_ceil(threads);
        super::bert::each_on_pool(out.chunks_mut(part), |t, out| rows(&row, t * part, out));
    } else {
        rows(&row, 0, &mut out);
    }
    Ok(out)
}

impl Q8Row {
    /// Zeros for `pairs` pairs of blocks.
    fn zeros(pairs: usize) -> Self {
        let blocks = 2 * pairs;
        Self {
            quants: vec![[0; 32]; blocks],
            scales: vec![0.0; blocks.next_multiple_of(8)],
            sums: vec![0.0; blocks.next_multiple_of(8)],
        }
    }
}

/// The scale of a block whose largest magnitude is `max`, and its inverse (0 for 0).
#[inline(always)]
fn block_scale(max: f32) -> (f32, f32) {
    let scale = max / 127.0;
    let inverse = 1.0 / scale;
    // A zero block, or one so small that the inverse overflows: all zeros either way.
    (scale, if inverse.is_finite() { inverse } else { 0.0 })
}

/// A block with a NaN or an infinity: its quants are zeros and its scale and sum NaN, so every
/// product with it is NaN, as the same activations give through the Q8_0 products (rather than
/// finite nonsense from NaN's integer conversion).
#[inline(always)]
fn poison(row: &mut Q8Row, b: usize) {
    row.quants[b] = [0; 32];
    row.scales[b] = f32::NAN;
    row.sums[b] = f32::NAN;
}

/// Quantizes `x` (whole blocks) per block of 32 to int8 (`round(x / scale)`, ties to even,
/// `scale = max |x| / 127`), into `pairs` pairs of blocks (zeros past `x`).
pub(super) fn quantize(x: &[f32], pairs: usize) -> Q8Row {
    quantize_with(x, pairs, |values| {
        let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (scale, inverse) = block_scale(max);
        (
            scale,
            values.map(|v| (v * inverse).round_ties_even() as i32),
        )
    })
}

/// The quantization's frame, shared by the portable and the SIMD quantizer: a block with a NaN
/// or an infinity is [`poison`]ed; any other gets `block`'s scale and rounded values, which
/// are within i8's range (|v·inverse| ≤ 127 up to rounding: checked by the tests), and their
/// sum.
#[inline(always)]
fn quantize_with(
    x: &[f32],
    pairs: usize,
    block: impl Fn(&[f32; BLOCK]) -> (f32, [i32; BLOCK]),
) -> Q8Row {
    let mut row = Q8Row::zeros(pairs);
    let blocks = pulp::as_arrays::<BLOCK, f32>(x).0;
    for (b, values) in blocks.iter().enumerate().take(2 * pairs) {
        if !values.iter().all(|v| v.is_finite()) {
            poison(&mut row, b);
            continue;
        }
        let (scale, quants) = block(values);
        let mut sum = 0i32;
        for (out, q) in row.quants[b].iter_mut().zip(quants) {
            *out = q as i8;
            sum += i32::from(*out);
        }
        row.scales[b] = scale;
        row.sums[b] = scale * sum as f32;
    }
    row
}

/// One row's product, portable: the same sums as the SIMD kernel, in block order.
fn dot(nibbles: &[[u8; 32]], scales: &[u16], mins: &[u16], x: &Q8Row) -> f32 {
    let mut total = 0f32;
    for (p, pair) in nibbles.iter().enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let b = 2 * p + half;
            let products: i32 = pair
                .iter()
                .zip(&x.quants[b])
                .map(|(&w, &q)| i32::from((w >> shift) & 0x0F) * i32::from(q))
                .sum();
            let (d, m) = (f16::from_bits(scales[b]), f16::from_bits(mins[b]));
            total += d.to_f32() * x.scales[b] * products as f32 + m.to_f32() * x.sums[b];
        }
    }
    total
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use pulp::x86::V3;
    use pulp::{cast, f32x8, i8x32, u16x8, u32x8, u8x32};

    use super::{block_scale, quantize_with, Q8Row};

    /// [`super::quantize`] on AVX2, with the same results.
    #[inline(always)]
    pub(super) fn quantize(simd: V3, x: &[f32], pairs: usize) -> Q8Row {
        quantize_with(x, pairs, |values| {
            let v: [f32x8; 4] = cast(*values);
            let magnitudes = v.map(|v| simd.abs_f32x8(v));
            let widest = simd.max_f32x8(
                simd.max_f32x8(magnitudes[0], magnitudes[1]),
                simd.max_f32x8(magnitudes[2], magnitudes[3]),
            );
            let lanes: [f32; 8] = cast(widest);
            let (scale, inverse) = block_scale(lanes.iter().fold(0f32, |m, v| m.max(*v)));
            let inverse = simd.splat_f32x8(inverse);
            let q = v
                .map(|v| simd.convert_f32x8_to_i32x8(simd.round_f32x8(simd.mul_f32x8(v, inverse))));
            (scale, cast(q))
        })
    }

    /// Eight f16 values (bits) as f32, exactly: the magnitude's bits moved into an f32's
    /// places and scaled by 2¹¹², right for normal and subnormal values alike, then the sign.
    /// (Infinities and NaNs, which the matrix refuses, are not handled.)
    #[inline(always)]
    pub(in crate::local) fn f16_to_f32(simd: V3, bits: [u16; 8]) -> f32x8 {
        let wide: u32x8 = simd.convert_u16x8_to_u32x8(cast::<[u16; 8], u16x8>(bits));
        let magnitude = simd.shl_const_u32x8::<13>(simd.and_u32x8(wide, simd.splat_u32x8(0x7FFF)));
        let sign = simd.shl_const_u32x8::<16>(simd.and_u32x8(wide, simd.splat_u32x8(0x8000)));
        let value = simd.mul_f32x8(
            cast(magnitude),
            simd.splat_f32x8(f32::from_bits(0x7780_0000)),
        );
        cast(simd.or_u32x8(cast(value), sign))
    }

    /// Asks for `bytes` bytes of `v` from element `at` into the caches (nothing past its end).
    #[inline(always)]
    pub(in crate::local) fn prefetch<T>(simd: V3, v: &[T], at: usize, bytes: usize) {
        let size = std::mem::size_of::<T>().max(1);
        let start = (at * size).min(std::mem::size_of_val(v));
        let end = (start + bytes).min(std::mem::size_of_val(v));
        let base = v.as_ptr().cast::<i8>();
        for offset in (start..end).step_by(64) {
            simd.sse
                ._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(base.wrapping_add(offset));
        }
    }

    /// One block's sums (`nibble` × `q`), times `scale`, added to `acc`.
    #[inline(always)]
    fn block(simd: V3, nibble: u8x32, q: &[i8; 32], scale: f32, acc: f32x8) -> f32x8 {
        let q: i8x32 = cast(*q);
        let pairs = simd.multiply_saturating_add_adjacent_i8x32(cast(nibble), q);
        let sums = simd.multiply_wrapping_add_adjacent_i16x16(pairs, simd.splat_i16x16(1));
        simd.mul_add_f32x8(
            simd.convert_i32x8_to_f32x8(sums),
            simd.splat_f32x8(scale),
            acc,
        )
    }

    /// A pair of blocks' nibbles: the even block's (low nibbles), the odd one's (high).
    #[inline(always)]
    fn split(simd: V3, pair: &[u8; 32]) -> (u8x32, u8x32) {
        let low = simd.splat_u8x32(0x0F);
        let bytes: u8x32 = cast(*pair);
        let shifted: u8x32 = cast(simd.shr_const_u16x16::<4>(cast(bytes)));
        (simd.and_u8x32(bytes, low), simd.and_u8x32(shifted, low))
    }

    /// One row's product on AVX2, eight blocks at a time: their scales converted and
    /// multiplied by the activations' in one vector each, their offsets `m·sum` added
    /// lane-wise; per pair of blocks one load of nibbles, two `vpmaddubsw` (nibble × int8,
    /// adjacent pairs summed to i16: at most 2·15·127), two `vpmaddwd` by ones (to i32), and
    /// each block's sums scaled into eight f32 lanes.
    #[inline(always)]
    pub(super) fn dot(
        simd: V3,
        nibbles: &[[u8; 32]],
        scales: &[u16],
        mins: &[u16],
        x: &Q8Row,
    ) -> f32 {
        let block = |nibble, q, scale, acc| block(simd, nibble, q, scale, acc);
        let split = |pair| split(simd, pair);
        // Four accumulators: one chain of dependent multiply-adds would wait on each one's
        // latency (a pair of blocks per 8 cycles, 12 GB/s at 3 GHz), not on the loads.
        let zero = simd.splat_f32x8(0.0);
        let (mut acc0, mut acc1, mut acc2, mut acc3) = (zero, zero, zero, zero);
        let mut offsets = zero;
        let x_scales = pulp::as_arrays::<8, f32>(&x.scales).0;
        let x_sums = pulp::as_arrays::<8, f32>(&x.sums).0;
        let (scales, mins) = (
            pulp::as_arrays::<8, u16>(scales).0,
            pulp::as_arrays::<8, u16>(mins).0,
        );
        let groups = nibbles.chunks(4).zip(x.quants.chunks(8));
        for ((((group, xq), d), m), (xd, xs)) in groups
            .zip(scales)
            .zip(mins)
            .zip(x_scales.iter().zip(x_sums))
        {
            let d = f16_to_f32(simd, *d);
            let m = f16_to_f32(simd, *m);
            let (xd, xs): (f32x8, f32x8) = (cast(*xd), cast(*xs));
            offsets = simd.mul_add_f32x8(m, xs, offsets);
            let s: [f32; 8] = cast(simd.mul_f32x8(d, xd));
            let mut twos = group.chunks_exact(2);
            for (j, two) in (&mut twos).enumerate() {
                let b = 4 * j;
                let (e0, o0) = split(&two[0]);
                let (e1, o1) = split(&two[1]);
                acc0 = block(e0, &xq[b], s[b], acc0);
                acc1 = block(o0, &xq[b + 1], s[b + 1], acc1);
                acc2 = block(e1, &xq[b + 2], s[b + 2], acc2);
                acc3 = block(o1, &xq[b + 3], s[b + 3], acc3);
            }
            if let [last] = twos.remainder() {
                let b = 2 * (group.len() - 1);
                let (e, o) = split(last);
                acc0 = block(e, &xq[b], s[b], acc0);
                acc1 = block(o, &xq[b + 1], s[b + 1], acc1);
            }
        }
        let acc = simd.add_f32x8(simd.add_f32x8(acc0, acc1), simd.add_f32x8(acc2, acc3));
        let lanes: [f32; 8] = cast(simd.add_f32x8(acc, offsets));
        lanes.iter().sum::<f32>()
    }
}

#[cfg(test)]
pub(in crate::local) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use candle_core::{Device, Tensor};
    use pulp::cast;

    use super::*;

    /// A `[rows, inputs]` weight of smooth pseudo-random values, quantized to `dtype`.
    pub(in crate::local) fn weight(
        rows: usize,
        inputs: usize,
        dtype: GgmlDType,
        seed: u64,
    ) -> QTensor {
        let mut s = seed;
        let values: Vec<f32> = (0..rows * inputs)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.45
            })
            .collect();
        let t = Tensor::from_vec(values, (rows, inputs), &Device::Cpu).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    }

    pub(in crate::local) fn activations(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect()
    }

    /// `x W^T` over the dequantized weights, in f64.
    pub(in crate::local) fn reference(parts: &[&QTensor], x: &[f32]) -> Vec<f64> {
        let mut out = Vec::new();
        for part in parts {
            let dense = part.dequantize(&Device::Cpu).unwrap();
            let inputs = dense.dim(1).unwrap();
            let dense: Vec<f32> = dense.flatten_all().unwrap().to_vec1().unwrap();
            for row in dense.chunks_exact(inputs) {
                out.push(row.iter().zip(x).map(|(w, x)| f64::from(w * x)).sum());
            }
        }
        out
    }

    /// Asserts that `got` is `want` (products with `x`) up to the int8 activations' rounding:
    /// each is off by at most half a step, max|x|/254.
    pub(in crate::local) fn within_rounding(got: &[f32], want: &[f64], x: &[f32]) {
        assert_eq!(got.len(), want.len());
        let bound = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 254.0;
        let tolerance = f64::from(bound) * 0.6 * x.len() as f64 + 1e-4;
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= tolerance,
                "{g} against {w} ({} inputs)",
                x.len()
            );
        }
    }

    /// Asserts that the portable kernel's product for row `r`, `portable(r)`, is the SIMD
    /// one's `got[r]` up to the order of the f32 sums.
    pub(in crate::local) fn portable_agrees(got: &[f32], portable: impl Fn(usize) -> f32) {
        for (r, g) in got.iter().enumerate() {
            let p = portable(r);
            assert!((p - g).abs() <= 1e-4 * (1.0 + g.abs()), "{p} against {g}");
        }
    }

    #[test]
    fn products_match_the_dequantized_weights_within_the_activations_rounding() {
        // 576 inputs is 18 blocks (9 pairs); 96 is 3 blocks, an odd count (a zero block).
        for (inputs, dtype) in [
            (576, GgmlDType::Q4_1),
            (576, GgmlDType::Q4_0),
            (96, GgmlDType::Q4_1),
        ] {
            let (a, b) = (weight(70, inputs, dtype, 7), weight(30, inputs, dtype, 9));
            let matrix = Q4Matrix::new(&[&a, &b]).unwrap().expect("4-bit parts");
            assert_eq!((matrix.outputs(), matrix.inputs()), (100, inputs));
            let x = activations(inputs);
            let got = matrix.forward(&x).unwrap();
            within_rounding(&got, &reference(&[&a, &b], &x), &x);
            // The SIMD kernel and the portable one sum the same products.
            let row = quantize(&x, matrix.pairs);
            let p = matrix.pairs;
            let stride = (2 * p).next_multiple_of(8);
            portable_agrees(&got, |r| {
                dot(
                    &matrix.nibbles[r * p..(r + 1) * p],
                    &matrix.scales[r * stride..(r + 1) * stride],
                    &matrix.mins[r * stride..(r + 1) * stride],
                    &row,
                )
            });
        }
    }

    #[test]
    fn parts_that_are_not_4_bit_blocks_are_left_to_the_other_products() {
        let q8 = weight(16, 64, GgmlDType::Q8_0, 3);
        let q4 = weight(16, 64, GgmlDType::Q4_1, 3);
        assert!(Q4Matrix::new(&[&q8]).unwrap().is_none());
        assert!(Q4Matrix::new(&[&q4, &q8]).unwrap().is_none());
        assert!(Q4Matrix::new(&[]).unwrap().is_none());
        let other_width = weight(16, 96, GgmlDType::Q4_1, 3);
        assert!(Q4Matrix::new(&[&q4, &other_width]).unwrap().is_none());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_quantization_is_the_portable_one() {
        let Some(simd) = pulp::x86::V3::try_new() else {
            return;
        };
        // Ties (0.5 steps), zeros, a block of one value, large and tiny magnitudes.
        let mut x = activations(256);
        x[..32]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 - 16.0) * 0.5);
        x[32..64].fill(0.0);
        x[64..96].fill(-3.25);
        x[96..128]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32) * 1e30);
        x[128..160]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32) * -1e-30);
        // Found by a review: a NaN became i32::MIN in the SIMD sum (finite nonsense, or an
        // overflow panic in a debug build); an infinity; a block so small that 1/scale
        // overflows, which the portable path turned into ±127.
        x[160..192].fill(0.5);
        x[160] = f32::NAN;
        x[161] = f32::NAN;
        x[192..224].fill(1.0);
        x[200] = f32::NEG_INFINITY;
        x[224..256]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32) * 1e-40);
        let (a, b) = (
            quantize(&x, 5),
            simd.vectorize(|| avx2::quantize(simd, &x, 5)),
        );
        assert_eq!(a.quants, b.quants);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.scales), bits(&b.scales));
        assert_eq!(bits(&a.sums), bits(&b.sums));
        assert!(a.quants[8..].iter().all(|q| *q == [0; 32]), "zeros past x");
        assert!(
            a.scales[5].is_nan() && a.scales[6].is_nan(),
            "non-finite blocks are NaN"
        );
        assert_eq!(a.quants[7], [0; 32], "a block too small to scale is zeros");
        // A product with a NaN activation is NaN.
        let w = weight(8, 256, GgmlDType::Q4_1, 11);
        let matrix = Q4Matrix::new(&[&w]).unwrap().unwrap();
        assert!(matrix.forward(&x).unwrap().iter().all(|v| v.is_nan()));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn f16_scales_convert_exactly() {
        let Some(simd) = pulp::x86::V3::try_new() else {
            return;
        };
        for chunk in (0..=u16::MAX).collect::<Vec<_>>().chunks_exact(8) {
            let bits: [u16; 8] = chunk.try_into().unwrap();
            let got: [f32; 8] = cast(simd.vectorize(|| avx2::f16_to_f32(simd, bits)));
            for (b, g) in bits.iter().zip(got) {
                let want = f16::from_bits(*b);
                if want.is_finite() {
                    assert_eq!(g.to_bits(), want.to_f32().to_bits(), "{b:#06x}");
                }
            }
        }
    }

    #[test]
    fn zero_activations_give_zero_products() {
        let w = weight(40, 64, GgmlDType::Q4_1, 5);
        let matrix = Q4Matrix::new(&[&w]).unwrap().unwrap();
        assert!(matrix
            .forward(&[0.0; 64])
            .unwrap()
            .iter()
            .all(|&v| v == 0.0));
        // A short row is an error, not a product over fewer inputs.
        let err = matrix.forward(&[1.0; 63]).unwrap_err().to_string();
        assert!(err.contains("63 activations"), "{err}");
    }
}
