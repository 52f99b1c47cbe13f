//! The scoring kernels of the in-memory store: dot products and squared distances of one
//! query against rows of a contiguous arena (`n × d` floats, one row per document), with the
//! widest SIMD the CPU has (AVX-512, AVX2 + FMA, SSE, NEON: `pulp` detects it at run time
//! and compiles the loops once per instruction set), and large scans split across threads.
//!
//! Dot products use explicit SIMD registers as a register-blocked matrix product (one
//! accumulator per query and row, fused multiply-adds where the CPU has them): a single
//! query against eight rows at a time, a batch four queries against three rows; the distance
//! loop keeps 16 independent partial sums, which the compiler vectorises without reordering
//! floating-point additions on its own. Results are deterministic for a given machine and
//! do not depend on the thread split or the batch size.

use std::num::NonZeroUsize;

/// Independent partial sums of the distance loop: two AVX2 registers, one AVX-512 register.
const LANES: usize = 16;

/// Scans of at least this many floats are split across threads (about 4 M: 10,000 rows of
/// 384 dimensions stay on the calling thread, 100,000 do not).
const PARALLEL_MIN_FLOATS: usize = 1 << 22;

/// `|a - b|²` over the shorter length, in 16 lanes.
#[inline(always)]
fn l2sq_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce(acc) + tail
}

/// The dot products of `Q` queries with `R` rows, `out[k][r] = qs[k] · rows[r]`, with
/// explicit SIMD registers: one accumulator per pair, fed a register of each in order with
/// fused multiply-adds where the CPU has them, then summed across lanes, then the scalar
/// tail. Every row register is loaded once for the `Q` queries and every query register once
/// for the `R` rows (a register-blocked matrix product); a pair's arithmetic is the same
/// whatever `Q` and `R` are, so a batch scores exactly as single searches do. All slices have
/// the same length (the store checks dimensions); a longer one is cut to the shortest.
#[inline(always)]
fn dots<S: pulp::Simd, const Q: usize, const R: usize>(
    simd: S,
    qs: [&[f32]; Q],
    rows: [&[f32]; R],
) -> [[f32; R]; Q] {
    let n = qs
        .iter()
        .chain(rows.iter())
        .map(|v| v.len())
        .min()
        .unwrap_or(0);
    let qs = qs.map(|q| S::as_simd_f32s(&q[..n]));
    let rows = rows.map(|r| S::as_simd_f32s(&r[..n]));
    // Every head has the same number of registers; slicing to it lets the loop go unchecked.
    let chunks = qs.first().map_or(0, |q| q.0.len());
    let qh = qs.map(|q| &q.0[..chunks]);
    let rh = rows.map(|r| &r.0[..chunks]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; R]; Q];
    for i in 0..chunks {
        let b = rh.map(|r| r[i]);
        for k in 0..Q {
            let x = qh[k][i];
            for r in 0..R {
                acc[k][r] = simd.mul_add_f32s(x, b[r], acc[k][r]);
            }
        }
    }
    let mut out = [[0.0f32; R]; Q];
    for k in 0..Q {
        for r in 0..R {
            let mut tail = 0.0f32;
            for (x, y) in qs[k].1.iter().zip(rows[r].1) {
                tail += x * y;
            }
            out[k][r] = simd.reduce_sum_f32s(acc[k][r]) + tail;
        }
    }
    out
}

/// Pairwise sum of the lanes.
#[inline(always)]
fn reduce(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `a · b` (over the shorter length).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    pulp::Arch::new().dispatch(Dot1(&a[..n], &b[..n]))
}

/// [`dots`] of one pair, dispatched to the CPU's best instruction set.
struct Dot1<'a>(&'a [f32], &'a [f32]);

impl pulp::WithSimd for Dot1<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f32 {
        dots(simd, [self.0], [self.1])[0][0]
    }
}

/// What a scan computes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// `query · row`.
    Dot,
    /// `|query - row|²`.
    L2Squared,
}

/// `out[j] = kernel(query, row rows[j])` where row `i` of `arena` is
/// `arena[i * d .. (i + 1) * d]`; every row when `rows` is `None` (then `out` has one slot
/// per row). Large scans run on several threads.
pub(super) fn scan(
    kernel: Kernel,
    arena: &[f32],
    d: usize,
    query: &[f32],
    rows: Option<&[usize]>,
    out: &mut [f32],
) {
    if d == 0 {
        out.fill(0.0);
        return;
    }
    let threads = if out.len().saturating_mul(d) >= PARALLEL_MIN_FLOATS {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    } else {
        1
    };
    if threads <= 1 {
        return scan_on_this_thread(kernel, arena, d, query, rows, 0, out);
    }
    let per = out.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(per).enumerate() {
            let start = t * per;
            scope.spawn(move || scan_on_this_thread(kernel, arena, d, query, rows, start, part));
        }
    });
}

/// [`scan`] of the slots `start..start + out.len()`, on this thread.
fn scan_on_this_thread(
    kernel: Kernel,
    arena: &[f32],
    d: usize,
    query: &[f32],
    rows: Option<&[usize]>,
    start: usize,
    out: &mut [f32],
) {
    pulp::Arch::new().dispatch(Scan {
        kernel,
        arena,
        d,
        query,
        rows,
        start,
        out,
    });
}

/// One thread's part of [`scan`], dispatched to the CPU's best instruction set.
struct Scan<'a> {
    kernel: Kernel,
    arena: &'a [f32],
    d: usize,
    query: &'a [f32],
    rows: Option<&'a [usize]>,
    start: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Scan<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Scan {
            kernel,
            arena,
            d,
            query,
            rows,
            start,
            out,
        } = self;
        let row = |j: usize| {
            let i = rows.map_or(start + j, |r| {
                r.get(start + j).copied().unwrap_or(usize::MAX)
            });
            arena.get(i * d..(i + 1) * d).unwrap_or(&[])
        };
        if kernel == Kernel::L2Squared {
            for (j, slot) in out.iter_mut().enumerate() {
                *slot = l2sq_lanes(query, row(j));
            }
            return;
        }
        // Eight rows at a time: eight independent accumulators keep the FMA units busy.
        let mut groups = out.chunks_exact_mut(SCAN_ROWS);
        let mut j = 0;
        for slots in groups.by_ref() {
            let rs: [&[f32]; SCAN_ROWS] = std::array::from_fn(|r| row(j + r));
            slots.copy_from_slice(&dots(simd, [query], rs)[0]);
            j += SCAN_ROWS;
        }
        for slot in groups.into_remainder() {
            *slot = dots(simd, [query], [row(j)])[0][0];
            j += 1;
        }
    }
}

/// Rows a single query is scored against at once.
const SCAN_ROWS: usize = 8;

/// Rows scored together against every query of a batch: 64 rows of 384 floats (96 KiB)
/// stay in the L2 cache while each query passes over them.
const BLOCK_ROWS: usize = 64;

/// Every row of `arena` against every query: `out[q * n + i] = kernel(queries[q], row i)`
/// with `n` rows. Each row is read from memory once per block of rows for the whole batch
/// (a blocked matrix product), and a large batch is split across threads by query.
pub(super) fn scan_many(
    kernel: Kernel,
    arena: &[f32],
    d: usize,
    queries: &[&[f32]],
    out: &mut [f32],
) {
    if d == 0 || queries.is_empty() {
        out.fill(0.0);
        return;
    }
    let n = arena.len() / d;
    let work = queries.len().saturating_mul(n).saturating_mul(d);
    let threads = if work >= PARALLEL_MIN_FLOATS && queries.len() > 1 {
        std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(queries.len())
    } else {
        1
    };
    let per = queries.len().div_ceil(threads);
    if threads <= 1 {
        return blocked(kernel, arena, d, queries, out);
    }
    std::thread::scope(|scope| {
        for (qs, part) in queries.chunks(per).zip(out.chunks_mut(per * n)) {
            scope.spawn(move || blocked(kernel, arena, d, qs, part));
        }
    });
}

/// [`scan_many`] on this thread.
fn blocked(kernel: Kernel, arena: &[f32], d: usize, queries: &[&[f32]], out: &mut [f32]) {
    pulp::Arch::new().dispatch(Blocked {
        kernel,
        arena,
        d,
        queries,
        out,
    });
}

/// One thread's part of [`scan_many`], dispatched to the CPU's best instruction set.
struct Blocked<'a> {
    kernel: Kernel,
    arena: &'a [f32],
    d: usize,
    queries: &'a [&'a [f32]],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Blocked<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Blocked {
            kernel,
            arena,
            d,
            queries,
            out,
        } = self;
        let n = arena.len() / d;
        // Dot products four queries against three rows at a time: twelve accumulators, each
        // row register loaded once for four queries and each query register once for three
        // rows.
        let fours = if kernel == Kernel::Dot {
            queries.len() / 4
        } else {
            0
        };
        let mut put = |q: usize, i: usize, s: f32| {
            if let Some(slot) = out.get_mut(q * n + i) {
                *slot = s;
            }
        };
        for start in (0..n).step_by(BLOCK_ROWS) {
            let end = n.min(start + BLOCK_ROWS);
            let block: Vec<&[f32]> = arena[start * d..end * d].chunks_exact(d).collect();
            for g in 0..fours {
                let q: [&[f32]; 4] = std::array::from_fn(|k| queries[4 * g + k]);
                let mut triples = block.chunks_exact(3);
                let mut i = start;
                for rs in triples.by_ref() {
                    let scores = dots(simd, q, [rs[0], rs[1], rs[2]]);
                    for (k, per_row) in scores.iter().enumerate() {
                        for (r, &s) in per_row.iter().enumerate() {
                            put(4 * g + k, i + r, s);
                        }
                    }
                    i += 3;
                }
                for &row in triples.remainder() {
                    for (k, s) in dots(simd, q, [row]).iter().enumerate() {
                        put(4 * g + k, i, s[0]);
                    }
                    i += 1;
                }
            }
            for (q, query) in queries.iter().enumerate().skip(4 * fours) {
                for (r, row) in block.iter().enumerate() {
                    let s = match kernel {
                        Kernel::Dot => dots(simd, [*query], [*row])[0][0],
                        Kernel::L2Squared => l2sq_lanes(query, row),
                    };
                    put(q, start + r, s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    /// A deterministic pseudo-random vector.
    fn vector(seed: u64, d: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..d)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_kernels_agree_with_plain_arithmetic_for_every_length() {
        for d in [0, 1, 3, 15, 16, 17, 31, 33, 384, 385, 1536] {
            let (a, b) = (vector(1, d), vector(2, d));
            let exact = naive_dot(&a, &b);
            assert!((f64::from(dot(&a, &b)) - exact).abs() < 1e-3, "d = {d}");
            let l2: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let mut out = [0.0];
            let arena = b.clone();
            if d > 0 {
                scan(Kernel::L2Squared, &arena, d, &a, None, &mut out);
                assert!((f64::from(out[0]) - l2).abs() < 1e-3, "d = {d}");
            }
        }
    }

    #[test]
    fn a_threaded_scan_equals_a_single_threaded_one_and_picks_rows() {
        let d = 64;
        let n = PARALLEL_MIN_FLOATS / d + 37;
        let arena: Vec<f32> = (0..n).flat_map(|i| vector(i as u64 + 10, d)).collect();
        let q = vector(3, d);
        let mut all = vec![0.0; n];
        scan(Kernel::Dot, &arena, d, &q, None, &mut all);
        for (i, s) in all.iter().enumerate().step_by(997) {
            assert_eq!(*s, dot(&q, &arena[i * d..(i + 1) * d]), "row {i}");
        }
        let queries: Vec<Vec<f32>> = (0..5).map(|s| vector(s + 100, d)).collect();
        let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let mut many = vec![0.0; 5 * n];
        scan_many(Kernel::Dot, &arena, d, &refs, &mut many);
        for (q, query) in queries.iter().enumerate() {
            for i in (0..n).step_by(991) {
                assert_eq!(
                    many[q * n + i],
                    dot(query, &arena[i * d..(i + 1) * d]),
                    "query {q} row {i}"
                );
            }
        }
        let rows = [n - 1, 0, 5];
        let mut picked = [0.0; 3];
        scan(Kernel::Dot, &arena, d, &q, Some(&rows), &mut picked);
        assert_eq!(picked, [all[n - 1], all[0], all[5]]);
    }
}
