//! Products of a GGUF file's Q8_0 weights, read as they are, with one row of activations: the
//! decoder's output layer, which runs on one row only (the last position's) and reads the
//! whole vocabulary's weights for it.
//!
//! A block is 32 weights `d·q` with `q` an int8 and `d` an f16. The activations are quantized
//! per block of 32 to int8 as for the 4-bit products ([`super::q4`]), so a block's product is
//! `d_w·d_x·Σ q_w·q_x`: on AVX2, `vpsignb` moves the weights' signs onto the activations and
//! `vpmaddubsw` multiplies their magnitudes (llama.cpp's trick), `vpmaddwd` by ones sums to
//! i32. The weights take 34 bytes a block, as in the file: for SmolLM2's tied embeddings,
//! 30 MB a token, where candle's products read them padded to the repacked kernels' width
//! (40 MB). The rows also serve as the token embeddings ([`Q8Matrix::dequantize_row`]), so
//! the model keeps no f32 copy of them.
//!
//! ```text
//! let w = Q8Matrix::new(&embeddings)?;   // Some when the tensor is Q8_0
//! let logits = w.forward(&x);            // x W^T, for one row x
//! ```

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{bail, Result};
use half::f16;

use super::q4::{one_row_product, Q8Row, BLOCK};

/// Bytes of a Q8_0 block in the file: the f16 scale, then 32 int8 weights.
const BLOCK_BYTES: usize = 34;

/// A weight matrix `[outputs, inputs]` of Q8_0 blocks.
pub(crate) struct Q8Matrix {
    outputs: usize,
    inputs: usize,
    /// Blocks per row.
    blocks: usize,
    /// `[outputs][blocks]`.
    quants: Vec<[i8; 32]>,
    /// `d` of every block (f16 bits), `[outputs][scale_stride]`: zeros after a row's blocks
    /// up to a multiple of 8, for whole-vector loads.
    scales: Vec<u16>,
}

impl Q8Matrix {
    /// The matrix of `tensor` (`[outputs, inputs]`), or `None` when it is not Q8_0, its rows
    /// are not whole blocks, or a scale is not finite.
    ///
    /// # Errors
    /// A tensor whose bytes do not match its shape.
    pub(crate) fn new(tensor: &QTensor) -> Result<Option<Self>> {
        let (outputs, inputs) = match tensor.shape().dims() {
            [outputs, inputs] => (*outputs, *inputs),
            _ => return Ok(None),
        };
        if tensor.dtype() != GgmlDType::Q8_0 || inputs == 0 || !inputs.is_multiple_of(BLOCK) {
            return Ok(None);
        }
        let blocks = inputs / BLOCK;
        let stride = blocks.next_multiple_of(8);
        let Some(bytes) = outputs
            .checked_mul(blocks)
            .and_then(|n| n.checked_mul(BLOCK_BYTES))
        else {
            return Ok(None);
        };
        let data: Cow<'_, [u8]> = tensor.data()?;
        if data.len() != bytes {
            bail!(
                "a Q8_0 tensor of {outputs} × {inputs} holds {} bytes",
                data.len()
            );
        }
        let mut quants = Vec::with_capacity(outputs * blocks);
        let mut scales = Vec::with_capacity(outputs * stride);
        for row in data.chunks_exact(blocks * BLOCK_BYTES) {
            for block in row.chunks_exact(BLOCK_BYTES) {
                let d = f16::from_le_bytes([block[0], block[1]]);
                if !d.is_finite() {
                    return Ok(None);
                }
                scales.push(d.to_bits());
                let mut q = [0i8; 32];
                for (q, &byte) in q.iter_mut().zip(&block[2..]) {
                    *q = i8::from_le_bytes([byte]);
                }
                quants.push(q);
            }
            scales.resize(scales.len() + stride - blocks, 0);
        }
        Ok(Some(Self {
            outputs,
            inputs,
            blocks,
            quants,
            scales,
        }))
    }

    /// Input width.
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output count.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// Row `r`'s weights, `d·q` in f32 (as candle dequantizes them) into `out` (`inputs`
    /// values), or `false` past the last row.
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) -> bool {
        let stride = self.blocks.next_multiple_of(8);
        let (Some(quants), Some(scales)) = (
            self.quants.get(r * self.blocks..(r + 1) * self.blocks),
            self.scales.get(r * stride..r * stride + self.blocks),
        ) else {
            return false;
        };
        for ((out, q), d) in out.chunks_exact_mut(BLOCK).zip(quants).zip(scales) {
            let d = f16::from_bits(*d).to_f32();
            for (o, q) in out.iter_mut().zip(q) {
                *o = f32::from(*q) * d;
            }
        }
        true
    }

    /// `x W^T` for one row `x` (its first [`Q8Matrix::inputs`] values; more are ignored):
    /// `outputs` values, in parts on candle's barrier pool when large.
    ///
    /// # Errors
    /// A row shorter than the inputs.
    pub(crate) fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        let pairs = self.blocks.div_ceil(2);
        one_row_product(self.outputs, self.inputs, pairs, x, |row, first, out| {
            self.rows(row, first, out)
        })
    }

    /// Rows `first..first + out.len()` of the product with `x`.
    fn rows(&self, x: &Q8Row, first: usize, out: &mut [f32]) {
        let b = self.blocks;
        let stride = b.next_multiple_of(8);
        let row = |r: usize| {
            (
                &self.quants[r * b..(r + 1) * b],
                &self.scales[r * stride..(r + 1) * stride],
            )
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            use super::q4::{avx2::prefetch, AHEAD};
            simd.vectorize(
                #[inline(always)]
                || {
                    for (i, o) in out.iter_mut().enumerate() {
                        let r = first + i;
                        prefetch(simd, &self.quants, (r + AHEAD) * b, b * 32);
                        let (quants, scales) = row(r);
                        *o = avx2::dot(simd, quants, scales, x);
                    }
                },
            );
            return;
        }
        for (i, o) in out.iter_mut().enumerate() {
            let (quants, scales) = row(first + i);
            *o = dot(quants, scales, x);
        }
    }
}

/// One row's product, portable: the same sums as the SIMD kernel, in block order.
fn dot(quants: &[[i8; 32]], scales: &[u16], x: &Q8Row) -> f32 {
    let mut total = 0f32;
    for (b, (w, q)) in quants.iter().zip(&x.quants).enumerate() {
        let products: i32 = w
            .iter()
            .zip(q)
            .map(|(&w, &q)| i32::from(w) * i32::from(q))
            .sum();
        total += f16::from_bits(scales[b]).to_f32() * x.scales[b] * products as f32;
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use pulp::x86::V3;
    use pulp::{cast, f32x8, i8x32};

    use super::super::q4::avx2::f16_to_f32;
    use super::Q8Row;

    /// One block's sums (`w` × `q`), times `scale`, added to `acc`: `|w|` by `q` with `w`'s
    /// sign (`vpmaddubsw` takes one unsigned operand; `|-128|` is 128 as a u8, and adjacent
    /// pairs sum to at most 2·128·127, within i16).
    #[inline(always)]
    fn block(simd: V3, w: &[i8; 32], q: &[i8; 32], scale: f32, acc: f32x8) -> f32x8 {
        let (w, q): (i8x32, i8x32) = (cast(*w), cast(*q));
        let magnitudes = simd.avx2._mm256_abs_epi8(cast(w));
        let signed = simd.avx2._mm256_sign_epi8(cast(q), cast(w));
        let pairs = simd.multiply_saturating_add_adjacent_i8x32(cast(magnitudes), cast(signed));
        let sums = simd.multiply_wrapping_add_adjacent_i16x16(pairs, simd.splat_i16x16(1));
        simd.mul_add_f32x8(
            simd.convert_i32x8_to_f32x8(sums),
            simd.splat_f32x8(scale),
            acc,
        )
    }

    /// One row's product on AVX2, eight blocks at a time: their scales converted and
    /// multiplied by the activations' in one vector, then each block's sums scaled into eight
    /// f32 lanes, over four accumulators.
    #[inline(always)]
    pub(super) fn dot(simd: V3, quants: &[[i8; 32]], scales: &[u16], x: &Q8Row) -> f32 {
        let zero = simd.splat_f32x8(0.0);
        let mut acc = [zero; 4];
        let x_scales = pulp::as_arrays::<8, f32>(&x.scales).0;
        let scales = pulp::as_arrays::<8, u16>(scales).0;
        let groups = quants.chunks(8).zip(x.quants.chunks(8));
        for (((group, xq), d), xd) in groups.zip(scales).zip(x_scales) {
            let s: [f32; 8] = cast(simd.mul_f32x8(f16_to_f32(simd, *d), cast(*xd)));
            for (j, (w, q)) in group.iter().zip(xq).enumerate() {
                acc[j % 4] = block(simd, w, q, s[j], acc[j % 4]);
            }
        }
        let sum = simd.add_f32x8(
            simd.add_f32x8(acc[0], acc[1]),
            simd.add_f32x8(acc[2], acc[3]),
        );
        let lanes: [f32; 8] = cast(sum);
        lanes.iter().sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use candle_core::Device;

    use super::super::q4::quantize;
    use super::super::q4::tests::{
        activations, portable_agrees, reference, weight, within_rounding,
    };
    use super::*;

    fn dense(w: &QTensor) -> Vec<f32> {
        w.dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn products_match_the_dequantized_weights_within_the_activations_rounding() {
        // 576 inputs is 18 blocks (two groups of eight and a part one); 96 is 3 blocks.
        for inputs in [576, 96] {
            let w = weight(100, inputs, GgmlDType::Q8_0, 7);
            let matrix = Q8Matrix::new(&w).unwrap().expect("Q8_0");
            assert_eq!((matrix.outputs(), matrix.inputs()), (100, inputs));
            let x = activations(inputs);
            let got = matrix.forward(&x).unwrap();
            within_rounding(&got, &reference(&[&w], &x), &x);
            // The SIMD kernel and the portable one sum the same products.
            let row = quantize(&x, matrix.blocks.div_ceil(2));
            let (b, stride) = (matrix.blocks, matrix.blocks.next_multiple_of(8));
            portable_agrees(&got, |r| {
                dot(
                    &matrix.quants[r * b..(r + 1) * b],
                    &matrix.scales[r * stride..(r + 1) * stride],
                    &row,
                )
            });
        }
    }

    #[test]
    fn extreme_weights_sum_without_saturating() {
        // -128 (which no quantizer writes, but a file may hold) and 127 against ±127
        // activations: the magnitudes' pairs reach 2·128·127, the most i16 takes.
        let mut bytes = Vec::new();
        for row in 0..4 {
            bytes.extend_from_slice(&f16::from_f32(0.5).to_le_bytes());
            bytes.extend((0..32).map(|j| if (row + j) % 2 == 0 { 0x80 } else { 0x7F }));
        }
        let w = QTensor::new(
            candle_core::quantized::QStorage::from_data(
                Cow::Owned(bytes),
                &Device::Cpu,
                GgmlDType::Q8_0,
            )
            .unwrap(),
            (4, 32),
        )
        .unwrap();
        let matrix = Q8Matrix::new(&w).unwrap().unwrap();
        for x in [[1.0f32; 32], [-1.0; 32]] {
            let got = matrix.forward(&x).unwrap();
            let dense = dense(&w);
            for (g, row) in got.iter().zip(dense.chunks_exact(32)) {
                let want: f32 = row.iter().zip(&x).map(|(w, x)| w * x).sum();
                assert!(
                    (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{g} against {want}"
                );
            }
        }
    }

    #[test]
    fn rows_dequantize_as_candle_does() {
        let w = weight(20, 96, GgmlDType::Q8_0, 3);
        let matrix = Q8Matrix::new(&w).unwrap().unwrap();
        let dense = dense(&w);
        let mut row = vec![0f32; 96];
        for (r, want) in dense.chunks_exact(96).enumerate() {
            assert!(matrix.dequantize_row(r, &mut row));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&row), bits(want), "row {r}");
        }
        assert!(!matrix.dequantize_row(20, &mut row), "past the last row");
    }

    #[test]
    fn tensors_that_are_not_q8_0_blocks_are_left_to_the_other_products() {
        assert!(Q8Matrix::new(&weight(16, 64, GgmlDType::Q4_1, 3))
            .unwrap()
            .is_none());
        assert!(Q8Matrix::new(&weight(16, 64, GgmlDType::F32, 3))
            .unwrap()
            .is_none());
        let matrix = Q8Matrix::new(&weight(16, 64, GgmlDType::Q8_0, 3))
            .unwrap()
            .unwrap();
        let err = matrix.forward(&[1.0; 63]).unwrap_err().to_string();
        assert!(err.contains("63 activations"), "{err}");
        assert!(matrix
            .forward(&[0.0; 64])
            .unwrap()
            .iter()
            .all(|&v| v == 0.0));
    }
}
