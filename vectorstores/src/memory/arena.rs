//! The vectors of an in-memory store, contiguous, in the precision it keeps them
//! ([`VectorPrecision`]).
//!
//! ```
//! use catena_vectorstores::{InMemoryVectorStore, VectorPrecision};
//!
//! // Half the memory for the vectors; scores come from the rounded values.
//! let store = InMemoryVectorStore::builder()
//!     .precision(VectorPrecision::F16)
//!     .build()
//!     .unwrap();
//! # let _ = store;
//! ```

use std::borrow::Cow;

use half::f16;
use half::slice::HalfFloatSliceExt;
use serde::{Deserialize, Serialize};

use super::kernel::Rows;

/// The precision an [`InMemoryVectorStore`](super::InMemoryVectorStore) keeps its vectors in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum VectorPrecision {
    /// 32-bit floats, as given (the default).
    #[default]
    F32,
    /// IEEE half precision: half the memory. Each value is rounded to the nearest f16 when
    /// it is written (a relative error of at most 2⁻¹¹, about 3 significant digits, from
    /// 6.1e-5 up; below, f16's subnormals keep an absolute error of at most 3e-8, and values
    /// under 3e-8 become zero), and every score, filter scan, batch and index is computed
    /// exactly from the rounded values, which are also what searches return as embeddings.
    /// A vector with a value beyond f16's range (±65,504), or one that is not zero but would
    /// round to all zeros, is refused with [`Error::InvalidInput`](catena_core::Error). A
    /// persisted file in f32 is rewritten rounded when a store of this precision opens it.
    /// Qdrant's `Float16` vectors and pgvector's `halfvec` store the same.
    F16,
}

/// A store's vectors: row `i` (`d` values) is entry `i`'s.
#[derive(Debug)]
pub(super) enum Arena {
    /// In f32.
    F32(Vec<f32>),
    /// In f16.
    F16(Vec<f16>),
}

impl Default for Arena {
    fn default() -> Self {
        Arena::F32(Vec::new())
    }
}

impl Arena {
    /// An empty arena of `precision`.
    pub(super) fn new(precision: VectorPrecision) -> Self {
        match precision {
            VectorPrecision::F32 => Arena::F32(Vec::new()),
            VectorPrecision::F16 => Arena::F16(Vec::new()),
        }
    }

    /// The rows, for the kernels.
    pub(super) fn rows(&self) -> Rows<'_> {
        match self {
            Arena::F32(a) => Rows::F32(a),
            Arena::F16(a) => Rows::F16(a),
        }
    }

    /// `vector` as this arena keeps it (rounded to f16 and back, for f16), or why it cannot
    /// keep it: a value beyond f16's range, or a vector that is not zero but would be (every
    /// value below f16's smallest, so no search could find it).
    pub(super) fn rounded(&self, mut vector: Vec<f32>) -> std::result::Result<Vec<f32>, String> {
        if let Arena::F16(_) = self {
            let mut vanished = false;
            for (i, v) in vector.iter_mut().enumerate() {
                let h = f16::from_f32(*v);
                if v.is_finite() && !h.is_finite() {
                    return Err(format!(
                        "value {i} ({v}) is beyond what f16 vectors hold (±65,504)"
                    ));
                }
                vanished |= *v != 0.0;
                *v = h.to_f32();
            }
            if vanished && vector.iter().all(|v| *v == 0.0) {
                return Err(
                    "every value is below what f16 vectors hold (6e-8): the vector \
                            would be stored as zeros"
                        .into(),
                );
            }
        }
        Ok(vector)
    }

    /// Row `i` in f32 (empty past the end).
    pub(super) fn row(&self, i: usize, d: usize) -> Cow<'_, [f32]> {
        let range = i.saturating_mul(d)..i.saturating_add(1).saturating_mul(d);
        match self {
            Arena::F32(a) => Cow::Borrowed(a.get(range).unwrap_or(&[])),
            Arena::F16(a) => Cow::Owned(a.get(range).map(|r| r.to_f32_vec()).unwrap_or_default()),
        }
    }

    /// Appends a row.
    pub(super) fn push(&mut self, vector: &[f32]) {
        match self {
            Arena::F32(a) => a.extend_from_slice(vector),
            Arena::F16(a) => a.extend(vector.iter().map(|&v| f16::from_f32(v))),
        }
    }

    /// Overwrites row `i` with `vector` (`d` values): whether it changed, or `None` past the
    /// end.
    pub(super) fn set(&mut self, i: usize, d: usize, vector: &[f32]) -> Option<bool> {
        let range = i.checked_mul(d)?..i.checked_add(1)?.checked_mul(d)?;
        match self {
            Arena::F32(a) => {
                let row = a.get_mut(range)?;
                let changed = *row != *vector;
                row.copy_from_slice(vector);
                Some(changed)
            }
            Arena::F16(a) => {
                let row = a.get_mut(range)?;
                let mut changed = false;
                for (slot, &v) in row.iter_mut().zip(vector) {
                    let h = f16::from_f32(v);
                    changed |= slot.to_bits() != h.to_bits();
                    *slot = h;
                }
                Some(changed)
            }
        }
    }

    /// Moves row `last` into row `i` and drops the rows from `last` on (a swap-remove of row
    /// `i` when `last` is the last row).
    pub(super) fn swap_remove(&mut self, i: usize, last: usize, d: usize) {
        fn apply<T: Copy>(a: &mut Vec<T>, i: usize, last: usize, d: usize) {
            if i < last && (last + 1) * d <= a.len() {
                a.copy_within(last * d..(last + 1) * d, i * d);
            }
            a.truncate(last * d);
        }
        match self {
            Arena::F32(a) => apply(a, i, last, d),
            Arena::F16(a) => apply(a, i, last, d),
        }
    }

    /// The same rows in `precision`, and whether any value changed (was rounded), or the
    /// first value that it cannot hold.
    pub(super) fn into_precision(
        self,
        precision: VectorPrecision,
    ) -> std::result::Result<(Arena, bool), f32> {
        Ok(match (self, precision) {
            (Arena::F32(a), VectorPrecision::F16) => {
                let mut rows = Vec::with_capacity(a.len());
                let mut changed = false;
                for v in a {
                    let h = f16::from_f32(v);
                    if v.is_finite() && !h.is_finite() {
                        return Err(v);
                    }
                    changed |= h.to_f32().to_bits() != v.to_bits();
                    rows.push(h);
                }
                (Arena::F16(rows), changed)
            }
            (Arena::F16(a), VectorPrecision::F32) => (Arena::F32(a.to_f32_vec()), false),
            (same, _) => (same, false),
        })
    }
}
