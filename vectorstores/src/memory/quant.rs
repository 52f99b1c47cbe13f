//! Int8 copies of the in-memory store's vectors (scalar quantization, one scale per
//! vector), which exact searches scan first when the store is built with
//! [`Quantization::Int8`]: a quarter of the bytes to read per query, then the best
//! candidates are scored again from the full-precision vectors.
//!
//! ```
//! use catena_core::{Document, EmbeddedDocument, SearchRequest, VectorStore};
//! use catena_vectorstores::{InMemoryVectorStore, Quantization};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = InMemoryVectorStore::builder()
//!     .quantization(Quantization::int8())
//!     .build()
//!     .unwrap();
//! store
//!     .upsert(vec![
//!         EmbeddedDocument::new(Document::new("red").with_id("a"), vec![1.0, 0.0]),
//!         EmbeddedDocument::new(Document::new("blue").with_id("b"), vec![0.0, 1.0]),
//!     ])
//!     .await
//!     .unwrap();
//! let hits = store.search(SearchRequest::new(vec![0.9, 0.1], 1)).await.unwrap();
//! assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "a");
//! # }
//! ```

use super::kernel::Rows;
use super::DistanceMetric;

/// Compressed copies of the vectors for a first pass of exact searches (see
/// [`InMemoryVectorStoreBuilder::quantization`](super::InMemoryVectorStoreBuilder::quantization)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Quantization {
    /// Every search scans the full-precision vectors (the default).
    #[default]
    None,
    /// An int8 copy of every vector (one byte per dimension and one scale per vector, 25 %
    /// more memory) is scanned first; the `max(k × oversampling, k + 64)` best rows by that
    /// approximate score are then scored exactly. Scores are always exact; a row can be
    /// missed only when more than that many rows score within the int8 rounding of it
    /// (recall@10 is reported in the tests and in `docs/benchmarks.md`).
    Int8 {
        /// How many candidates per requested hit are scored exactly (at least 1).
        oversampling: usize,
    },
}

impl Quantization {
    /// [`Quantization::Int8`] with 8 candidates per requested hit.
    pub fn int8() -> Self {
        Quantization::Int8 { oversampling: 8 }
    }

    /// How many rows a search for `k` hits scores exactly: `None` without quantization.
    pub(super) fn candidates(self, k: usize) -> Option<usize> {
        match self {
            Quantization::None => None,
            Quantization::Int8 { oversampling } => Some(
                k.saturating_mul(oversampling.max(1))
                    .max(k.saturating_add(64)),
            ),
        }
    }
}

/// The most dimensions an int8 dot product sums without overflowing 32 bits
/// (`127² × 133,000 < 2³¹`); longer vectors are scanned at full precision.
pub(super) const MAX_DIMENSIONS: usize = 133_000;

/// The int8 codes of every row of a store's arena, in the same row order.
#[derive(Debug, Default)]
pub(super) struct Int8Rows {
    metric: DistanceMetric,
    /// Row `i` is `codes[i * d..(i + 1) * d]`.
    codes: Vec<i8>,
    /// `row ≈ scales[i] × codes` (for cosine, `row / |row|` is what is coded).
    scales: Vec<f32>,
    /// `|row|²` (Euclidean only: the approximate distance needs it).
    squares: Vec<f32>,
}

impl Int8Rows {
    /// Empty codes for a store of this metric.
    pub(super) fn new(metric: DistanceMetric) -> Self {
        Int8Rows {
            metric,
            ..Int8Rows::default()
        }
    }

    /// The codes of every row of `arena` (rows of `d` floats).
    pub(super) fn from_arena(metric: DistanceMetric, arena: Rows<'_>, d: usize) -> Self {
        let mut rows = Int8Rows::new(metric);
        for i in 0..arena.len().checked_div(d).unwrap_or(0) {
            if let Some(row) = arena.row(i, d) {
                rows.push(&row);
            }
        }
        rows
    }

    /// Appends the codes of a new last row.
    pub(super) fn push(&mut self, row: &[f32]) {
        let start = self.codes.len();
        self.codes.resize(start + row.len(), 0);
        let (scale, square) = self.code(row, start);
        self.scales.push(scale);
        self.squares.push(square);
    }

    /// Replaces the codes of row `i`.
    pub(super) fn set(&mut self, i: usize, row: &[f32]) {
        let (scale, square) = self.code(row, i * row.len());
        if let (Some(s), Some(q)) = (self.scales.get_mut(i), self.squares.get_mut(i)) {
            (*s, *q) = (scale, square);
        }
    }

    /// Moves the last row into row `i` and drops the last (as `Vec::swap_remove`).
    pub(super) fn swap_remove(&mut self, i: usize, d: usize) {
        let last = self.scales.len().saturating_sub(1);
        if i < last {
            self.codes.copy_within(last * d..(last + 1) * d, i * d);
        }
        self.codes.truncate(last * d);
        if i < self.scales.len() {
            self.scales.swap_remove(i);
            self.squares.swap_remove(i);
        }
    }

    /// Codes `row` into `codes[start..]`; its scale and `|row|²`.
    fn code(&mut self, row: &[f32], start: usize) -> (f32, f32) {
        let square: f32 = row.iter().map(|x| x * x).sum();
        let Some(out) = self.codes.get_mut(start..start + row.len()) else {
            return (0.0, square);
        };
        let unit = if self.metric == DistanceMetric::Cosine && square > 0.0 {
            1.0 / square.sqrt()
        } else {
            1.0
        };
        let scale = quantize(row, unit, out);
        let square = if self.metric == DistanceMetric::Euclidean {
            square
        } else {
            0.0
        };
        (scale, square)
    }

    /// The approximate score of every row (or of `rows`) for a query whose codes are
    /// `query` with scale `scale`, in the metric's order (higher is closer; for Euclidean
    /// `q · r - |r|² / 2 = (|q|² - |q - r|²) / 2`, which orders as the distance does and
    /// stays finite for every vector validation accepts).
    pub(super) fn scores(&self, query: &[i8], scale: f32, rows: Option<&[usize]>, out: &mut [f32]) {
        super::kernel::scan_i8(&self.codes, &self.scales, query, rows, out);
        for v in out.iter_mut() {
            *v *= scale;
        }
        if self.metric == DistanceMetric::Euclidean {
            for (j, v) in out.iter_mut().enumerate() {
                let i = rows.map_or(j, |r| r.get(j).copied().unwrap_or(usize::MAX));
                *v -= 0.5 * self.squares.get(i).copied().unwrap_or(f32::INFINITY);
            }
        }
    }

    /// The codes of `query` for [`scores`](Self::scores), and their scale.
    pub(super) fn code_query(&self, query: &[f32]) -> (Vec<i8>, f32) {
        let mut codes = vec![0i8; query.len()];
        let scale = quantize(query, 1.0, &mut codes);
        (codes, scale)
    }
}

/// Writes the codes of `x · unit` to `out` (in `-127..=127`) and returns their scale:
/// `x[j] · unit ≈ scale × out[j]`. A zero vector, or one with an infinite component, codes
/// as zeros with scale 0; a NaN component codes as 0.
pub(super) fn quantize(x: &[f32], unit: f32, out: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) * unit;
    if !max.is_finite() || max <= 0.0 {
        out.fill(0);
        return 0.0;
    }
    // In f64: 127 / max overflows f32 for the tiniest (subnormal) vectors.
    let inverse = 127.0 / f64::from(max) * f64::from(unit);
    for (o, v) in out.iter_mut().zip(x) {
        *o = (f64::from(*v) * inverse).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_rows_through_pushes_replacements_and_removals() {
        let d = 3;
        let rows = [
            [1.0, -2.0, 0.5],
            [0.0, 0.0, 0.0],
            [4.0, 4.0, -4.0],
            [0.1, 0.2, 0.3],
        ];
        let mut q = Int8Rows::new(DistanceMetric::DotProduct);
        for r in &rows {
            q.push(r);
        }
        assert_eq!(&q.codes[..3], &[64, -127, 32]);
        assert_eq!(q.scales[0], 2.0 / 127.0);
        assert_eq!(&q.codes[3..6], &[0, 0, 0]);
        assert_eq!(q.scales[1], 0.0);
        q.swap_remove(0, d);
        assert_eq!(q.scales.len(), 3);
        assert_eq!(&q.codes[..3], &[42, 85, 127]);
        q.set(1, &[1.0, 0.0, 0.0]);
        assert_eq!(&q.codes[3..6], &[127, 0, 0]);
        let from = Int8Rows::from_arena(
            DistanceMetric::DotProduct,
            Rows::F32(&[0.1, 0.2, 0.3, 1.0, 0.0, 0.0, 4.0, 4.0, -4.0]),
            d,
        );
        assert_eq!(from.codes, q.codes);
        assert_eq!(from.scales, q.scales);
        q.swap_remove(2, d);
        q.swap_remove(1, d);
        q.swap_remove(0, d);
        assert!(q.codes.is_empty() && q.scales.is_empty());
    }

    #[test]
    fn cosine_codes_the_unit_vector_and_euclidean_keeps_the_square() {
        let mut c = Int8Rows::new(DistanceMetric::Cosine);
        c.push(&[3.0, 4.0]);
        assert_eq!(c.codes, [95, 127]);
        assert!((c.scales[0] - 0.8 / 127.0).abs() < 1e-9);
        let mut e = Int8Rows::new(DistanceMetric::Euclidean);
        e.push(&[3.0, 4.0]);
        assert_eq!(e.squares, [25.0]);
        let (codes, scale) = e.code_query(&[3.0, 4.0]);
        let mut out = [0.0];
        e.scores(&codes, scale, None, &mut out);
        // (|q|² - |q - r|²) / 2 = 12.5 for q = r, within the rounding of the codes.
        assert!((out[0] - 12.5).abs() < 0.1, "{}", out[0]);
        // A NaN component codes as 0 and an infinite vector as zeros with scale 0, rather
        // than poisoning the scan (the store rejects such vectors before this anyway).
        assert_eq!(e.code_query(&[f32::NAN, 1.0]).0, [0, 127]);
        assert_eq!(e.code_query(&[f32::INFINITY, 1.0]), (vec![0, 0], 0.0));
    }
}
