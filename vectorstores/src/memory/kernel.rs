//! The scoring kernels of the in-memory store: dot products and squared distances of one
//! query against rows of a contiguous arena (`n × d` floats, one row per document), with the
//! widest SIMD the CPU has (AVX-512, AVX2 + FMA, SSE, NEON: `pulp` detects it at run time
//! and compiles the loops once per instruction set), and large scans split across threads.
//!
//! Dot products use explicit SIMD registers (two accumulators per query, fused
//! multiply-adds where the CPU has them); the distance loop keeps 16 independent partial
//! sums, which the compiler vectorises without reordering floating-point additions on its
//! own. A batch of dot products is a register-blocked matrix product ([`dot_matrix`]),
//! whose sums are in another order: callers re-score its best candidates with [`scan`].
//! Results are deterministic for a given machine and do not depend on the thread split.

use std::num::NonZeroUsize;

use half::f16;
use half::slice::HalfFloatSliceExt;

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

/// `[q · b for q in qs]` with explicit SIMD registers: two accumulators per query, `b`
/// loaded once for all `Q` queries, fused multiply-adds where the CPU has them. The sums of
/// one query come out the same whatever `Q` is (same registers, same order), so a batch
/// scores exactly as single searches do.
#[inline(always)]
fn dots<S: pulp::Simd, const Q: usize>(simd: S, qs: [&[f32]; Q], b: &[f32]) -> [f32; Q] {
    let (bh, bt) = S::as_simd_f32s(b);
    let heads = qs.map(|q| S::as_simd_f32s(q));
    let zero = simd.splat_f32s(0.0);
    let mut acc0 = [zero; Q];
    let mut acc1 = [zero; Q];
    let pairs = bh.len() / 2;
    for i in 0..pairs {
        let (b0, b1) = (bh[2 * i], bh[2 * i + 1]);
        for k in 0..Q {
            let qh = heads[k].0;
            if let (Some(&x0), Some(&x1)) = (qh.get(2 * i), qh.get(2 * i + 1)) {
                acc0[k] = simd.mul_add_f32s(x0, b0, acc0[k]);
                acc1[k] = simd.mul_add_f32s(x1, b1, acc1[k]);
            }
        }
    }
    let mut out = [0.0f32; Q];
    for k in 0..Q {
        let (qh, qt) = heads[k];
        if bh.len() % 2 == 1 {
            if let (Some(&x), Some(&y)) = (qh.get(bh.len() - 1), bh.last()) {
                acc0[k] = simd.mul_add_f32s(x, y, acc0[k]);
            }
        }
        let mut tail = 0.0f32;
        for (x, y) in qt.iter().zip(bt) {
            tail += x * y;
        }
        out[k] = simd.reduce_sum_f32s(simd.add_f32s(acc0[k], acc1[k])) + tail;
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
        dots(simd, [self.0], self.1)[0]
    }
}

/// `a · b` of int8 codes (over the shorter length), exact: summed in 32 bits per 2¹⁶
/// dimensions (127² × 2¹⁶ < 2³¹), then in 64. Inlined into its callers' SIMD dispatch, where
/// the compiler vectorises it as widening multiply-adds.
#[inline(always)]
pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i64 {
    a.chunks(1 << 16)
        .zip(b.chunks(1 << 16))
        .map(|(a, b)| {
            i64::from(
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .fold(0i32, i32::wrapping_add),
            )
        })
        .sum()
}

/// What a scan computes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// `query · row`.
    Dot,
    /// `|query - row|²`.
    L2Squared,
}

/// A store's rows, `d` values each, contiguous: in f32, or in f16 (each row converted to f32,
/// exactly, before it is scored: F16C on x86 through `half`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Rows<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
}

impl<'a> Rows<'a> {
    /// How many values (rows × `d`).
    pub(super) fn len(self) -> usize {
        match self {
            Rows::F32(a) => a.len(),
            Rows::F16(a) => a.len(),
        }
    }

    /// Rows `start..end` in f32: borrowed, or converted into `buf` (at least `(end - start) ×
    /// d` long); empty when they are not all there.
    #[inline(always)]
    pub(super) fn rows_in<'b>(
        self,
        start: usize,
        end: usize,
        d: usize,
        buf: &'b mut [f32],
    ) -> &'b [f32]
    where
        'a: 'b,
    {
        let range = start.saturating_mul(d)..end.saturating_mul(d);
        match self {
            Rows::F32(a) => a.get(range).unwrap_or(&[]),
            Rows::F16(a) => match a.get(range) {
                Some(src) => match buf.get_mut(..src.len()) {
                    Some(dst) => {
                        src.convert_to_f32_slice(dst);
                        dst
                    }
                    None => &[],
                },
                None => &[],
            },
        }
    }

    /// Row `i` in f32, as [`Rows::rows_in`] gives it.
    #[inline(always)]
    pub(super) fn row_in<'b>(self, i: usize, d: usize, buf: &'b mut [f32]) -> &'b [f32]
    where
        'a: 'b,
    {
        self.rows_in(i, i.saturating_add(1), d, buf)
    }

    /// Row `i` in f32: borrowed, or converted; `None` past the end.
    pub(super) fn row(self, i: usize, d: usize) -> Option<std::borrow::Cow<'a, [f32]>> {
        let range = i.checked_mul(d)?..i.checked_add(1)?.checked_mul(d)?;
        Some(match self {
            Rows::F32(a) => std::borrow::Cow::Borrowed(a.get(range)?),
            Rows::F16(a) => std::borrow::Cow::Owned(a.get(range)?.to_f32_vec()),
        })
    }

    /// Whether rows are converted (and need a buffer).
    fn converted(self) -> bool {
        matches!(self, Rows::F16(_))
    }
}

/// A scratch buffer of `floats` for converted rows (empty for f32 rows, which are borrowed).
fn scratch(rows: Rows<'_>, floats: usize) -> Vec<f32> {
    if rows.converted() {
        vec![0.0; floats]
    } else {
        Vec::new()
    }
}

/// `out[j] = kernel(query, row rows[j])` where row `i` of `arena` is its values
/// `i * d .. (i + 1) * d`; every row when `rows` is `None` (then `out` has one slot per row).
/// Large scans run on several threads.
pub(super) fn scan(
    kernel: Kernel,
    arena: Rows<'_>,
    d: usize,
    query: &[f32],
    rows: Option<&[usize]>,
    out: &mut [f32],
) {
    if d == 0 {
        out.fill(0.0);
        return;
    }
    split(out, d, |start, part| {
        scan_on_this_thread(kernel, arena, d, query, rows, start, part);
    });
}

/// Runs `work(start, slots)` over `out` in parts, on several threads when the scan reads at
/// least [`PARALLEL_MIN_FLOATS`] values (`per_slot` per slot of `out`), else on this one.
fn split(out: &mut [f32], per_slot: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = if out.len().saturating_mul(per_slot) >= PARALLEL_MIN_FLOATS {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    } else {
        1
    };
    if threads <= 1 {
        return work(0, out);
    }
    let per = out.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(per).enumerate() {
            scope.spawn(move || work(t * per, part));
        }
    });
}

/// `out[j] = scales[i] × (query · codes of row i)` for `i = rows[j]` (or `j`), the int8
/// codes of `d = query.len()` bytes per row summed exactly in 32-bit integers (the caller
/// keeps `d` at most [`quant::MAX_DIMENSIONS`](super::quant::MAX_DIMENSIONS)). Large scans
/// run on several threads.
pub(super) fn scan_i8(
    codes: &[i8],
    scales: &[f32],
    query: &[i8],
    rows: Option<&[usize]>,
    out: &mut [f32],
) {
    let d = query.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    split(out, d / 4, |start, part| {
        pulp::Arch::new().dispatch(ScanI8 {
            codes,
            scales,
            query,
            rows,
            start,
            out: part,
        });
    });
}

/// One thread's part of [`scan_i8`], compiled for the CPU's best instruction set (the
/// compiler vectorises the integer dot product: widening multiply-adds).
struct ScanI8<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
    query: &'a [i8],
    rows: Option<&'a [usize]>,
    start: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for ScanI8<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let ScanI8 {
            codes,
            scales,
            query,
            rows,
            start,
            out,
        } = self;
        let d = query.len();
        for (j, slot) in out.iter_mut().enumerate() {
            let i = rows.map_or(start + j, |r| {
                r.get(start + j).copied().unwrap_or(usize::MAX)
            });
            let (Some(row), Some(&scale)) = (codes.get(i * d..(i + 1) * d), scales.get(i)) else {
                *slot = f32::NAN;
                continue;
            };
            *slot = scale * dot_i8(row, query) as f32;
        }
    }
}

/// [`scan`] of the slots `start..start + out.len()`, on this thread.
fn scan_on_this_thread(
    kernel: Kernel,
    arena: Rows<'_>,
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
    arena: Rows<'a>,
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
        let index = |j: usize| {
            rows.map_or(start + j, |r| {
                r.get(start + j).copied().unwrap_or(usize::MAX)
            })
        };
        let mut buf = scratch(arena, 4 * d);
        match kernel {
            Kernel::Dot => {
                // Four rows at a time against the query: eight independent chains of sums
                // instead of two. `dots` is symmetric in its operands, so each row's sum is
                // the same, bit for bit, as `dots(simd, [query], row)` computes it.
                let mut quads = out.chunks_exact_mut(4);
                let mut j = 0;
                for slots in &mut quads {
                    let [b0, b1, b2, b3] = four_parts(&mut buf, d);
                    let four = [
                        arena.row_in(index(j), d, b0),
                        arena.row_in(index(j + 1), d, b1),
                        arena.row_in(index(j + 2), d, b2),
                        arena.row_in(index(j + 3), d, b3),
                    ];
                    slots.copy_from_slice(&dots(simd, four, query));
                    j += 4;
                }
                for slot in quads.into_remainder() {
                    *slot = dots(simd, [query], arena.row_in(index(j), d, &mut buf))[0];
                    j += 1;
                }
            }
            Kernel::L2Squared => {
                for (j, slot) in out.iter_mut().enumerate() {
                    *slot = l2sq_lanes(query, arena.row_in(index(j), d, &mut buf));
                }
            }
        }
    }
}

/// `buf` cut into four parts of `d` (shorter ones when it is shorter).
fn four_parts(buf: &mut [f32], d: usize) -> [&mut [f32]; 4] {
    let (a, rest) = buf.split_at_mut(d.min(buf.len()));
    let (b, rest) = rest.split_at_mut(d.min(rest.len()));
    let (c, rest) = rest.split_at_mut(d.min(rest.len()));
    [a, b, c, rest]
}

/// Rows scored together against every query of a batch: 64 rows of 384 floats (96 KiB)
/// stay in the L2 cache while each query passes over them.
const BLOCK_ROWS: usize = 64;

/// Every row of `arena` against every query: `out[q * n + i] = kernel(queries[q], row i)`
/// with `n` rows. Each row is read from memory once per block of rows for the whole batch
/// (a blocked matrix product), and a large batch is split across threads by query.
pub(super) fn scan_many(
    kernel: Kernel,
    arena: Rows<'_>,
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
fn blocked(kernel: Kernel, arena: Rows<'_>, d: usize, queries: &[&[f32]], out: &mut [f32]) {
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
    arena: Rows<'a>,
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
        let mut buf = scratch(arena, BLOCK_ROWS * d);
        for start in (0..n).step_by(BLOCK_ROWS) {
            let end = n.min(start + BLOCK_ROWS);
            let block = arena.rows_in(start, end, d, &mut buf);
            for (q, query) in queries.iter().enumerate() {
                let Some(slots) = out.get_mut(q * n + start..q * n + end) else {
                    return;
                };
                for (slot, row) in slots.iter_mut().zip(block.chunks_exact(d)) {
                    *slot = match kernel {
                        Kernel::Dot => dots(simd, [*query], row)[0],
                        Kernel::L2Squared => l2sq_lanes(query, row),
                    };
                }
            }
        }
    }
}

/// `out[q * n + i] = queries[q] · row i` for every row of `arena` (`n` rows) and every
/// query: a matrix product. The queries are packed dimension-major, two SIMD registers of
/// them side by side, and a micro-kernel keeps a 6 × 2 (16 registers) or 12 × 2 (32
/// registers) tile of sums in registers, broadcasting one element of each row per step:
/// no horizontal sums, and each block of rows is read from memory once for the whole
/// batch. Large products are split across threads by rows.
///
/// The sums run in another order than [`dot`]'s, so a score can differ from a single
/// search's in its last bits: callers pick candidates with a margin ([`dot_margin`]) and
/// re-score them with [`scan`].
pub(super) fn dot_matrix(arena: &[f32], d: usize, queries: &[&[f32]], out: &mut [f32]) {
    out.fill(0.0);
    if d == 0 || queries.is_empty() {
        return;
    }
    let n = (arena.len() / d).min(out.len() / queries.len());
    if n == 0 {
        return;
    }
    let work = queries.len().saturating_mul(n).saturating_mul(d);
    let threads = if work >= PARALLEL_MIN_FLOATS {
        std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(n.div_ceil(MATRIX_ROWS_MAX))
    } else {
        1
    };
    let per = n.div_ceil(threads.max(1)).next_multiple_of(MATRIX_ROWS_MAX);
    // The queries, packed once for every thread, dimension-major in groups of two SIMD
    // registers: `packed[(g * d + k) * group + j]` is element `k` of query
    // `g * group + j` (zero past the last query).
    let group = 2 * pulp::Arch::new().dispatch(Lanes);
    let groups = queries.len().div_ceil(group);
    let mut packed = vec![0.0f32; groups * d * group];
    for (q, query) in queries.iter().enumerate() {
        let (g, j) = (q / group, q % group);
        for (k, &x) in query.iter().take(d).enumerate() {
            if let Some(slot) = packed.get_mut((g * d + k) * group + j) {
                *slot = x;
            }
        }
    }
    let packed = packed.as_slice();
    // Each thread's slots: its rows' part of every query's scores.
    let mut parts: Vec<(usize, Vec<&mut [f32]>)> = (0..n.div_ceil(per))
        .map(|t| (t * per, Vec::with_capacity(queries.len())))
        .collect();
    for scores in out.chunks_mut(n).take(queries.len()) {
        for (part, slots) in parts.iter_mut().zip(scores.chunks_mut(per)) {
            part.1.push(slots);
        }
    }
    let run = |(start, out): (usize, Vec<&mut [f32]>)| {
        pulp::Arch::new().dispatch(Matrix {
            arena,
            d,
            packed,
            group,
            start,
            out,
        });
    };
    if parts.len() <= 1 {
        parts.into_iter().for_each(run);
        return;
    }
    std::thread::scope(|scope| {
        for part in parts {
            scope.spawn(move || run(part));
        }
    });
}

/// The most rows a micro-kernel of [`dot_matrix`] scores at once.
const MATRIX_ROWS_MAX: usize = 12;

/// How far a [`dot_matrix`] score can be from [`dot`]'s for the same vectors, as a
/// fraction of `|query| · |row|`: a sum of `d` products in any order is within about
/// `(d + 1) · u` of the exact one (`u = 2⁻²⁴`, the unit roundoff), so the two differ by at
/// most twice that; doubled again for safety.
pub(super) fn dot_margin(d: usize) -> f32 {
    4.0 * (d as f32 + 2.0) * (f32::EPSILON / 2.0)
}

/// The number of `f32` lanes of the CPU's best instruction set.
struct Lanes;

impl pulp::WithSimd for Lanes {
    type Output = usize;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> usize {
        S::F32_LANES
    }
}

/// One thread's part of [`dot_matrix`]: rows `start..start + out[q].len()` against every
/// query (packed in groups of `group`), dispatched to the CPU's best instruction set.
struct Matrix<'a> {
    arena: &'a [f32],
    d: usize,
    packed: &'a [f32],
    group: usize,
    start: usize,
    out: Vec<&'a mut [f32]>,
}

impl pulp::WithSimd for Matrix<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        if S::REGISTER_COUNT >= 32 {
            matrix::<S, 12>(simd, self);
        } else {
            matrix::<S, 6>(simd, self);
        }
    }
}

/// [`Matrix`] with `R` rows per micro-kernel call.
#[inline(always)]
fn matrix<S: pulp::Simd, const R: usize>(simd: S, job: Matrix<'_>) {
    let Matrix {
        arena,
        d,
        packed,
        group,
        start,
        mut out,
    } = job;
    if group != 2 * S::F32_LANES {
        // Packed for another instruction set than this thread got: never the case, as
        // every thread detects the same CPU.
        return;
    }
    let rows = out.first().map_or(0, |s| s.len());
    let mut tile = [0.0f32; 64];
    let Some(tile) = tile.get_mut(..group) else {
        return;
    };
    let mut first = 0;
    while first < rows {
        let count = R.min(rows - first);
        let block: [&[f32]; R] = std::array::from_fn(|r| {
            let i = start + first + r.min(count - 1);
            arena.get(i * d..(i + 1) * d).unwrap_or(&[])
        });
        for (g, qp) in packed.chunks_exact(d * group).enumerate() {
            let sums = micro::<S, R>(simd, S::as_simd_f32s(qp).0, block, d);
            for (r, pair) in sums.iter().enumerate().take(count) {
                let (head, _) = S::as_mut_simd_f32s(tile);
                for (dst, src) in head.iter_mut().zip(pair) {
                    *dst = *src;
                }
                for (scores, &s) in out.iter_mut().skip(g * group).zip(tile.iter()) {
                    if let Some(slot) = scores.get_mut(first + r) {
                        *slot = s;
                    }
                }
            }
        }
        first += count;
    }
}

/// The micro-kernel of [`dot_matrix`]: the sums of `R` rows against the `2 × lanes`
/// queries packed in `qp` (`d` pairs of registers), in `2R` registers.
#[inline(always)]
fn micro<S: pulp::Simd, const R: usize>(
    simd: S,
    qp: &[S::f32s],
    rows: [&[f32]; R],
    d: usize,
) -> [[S::f32s; 2]; R] {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; R];
    let (Some(qp), true) = (qp.get(..2 * d), rows.iter().all(|r| r.len() >= d)) else {
        return acc;
    };
    let rows = rows.map(|r| &r[..d]);
    for k in 0..d {
        let (q0, q1) = (qp[2 * k], qp[2 * k + 1]);
        for r in 0..R {
            let x = simd.splat_f32s(rows[r][k]);
            acc[r][0] = simd.mul_add_f32s(x, q0, acc[r][0]);
            acc[r][1] = simd.mul_add_f32s(x, q1, acc[r][1]);
        }
    }
    acc
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
                scan(Kernel::L2Squared, Rows::F32(&arena), d, &a, None, &mut out);
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
        scan(Kernel::Dot, Rows::F32(&arena), d, &q, None, &mut all);
        for (i, s) in all.iter().enumerate().step_by(997) {
            assert_eq!(*s, dot(&q, &arena[i * d..(i + 1) * d]), "row {i}");
        }
        let queries: Vec<Vec<f32>> = (0..5).map(|s| vector(s + 100, d)).collect();
        let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let mut many = vec![0.0; 5 * n];
        scan_many(Kernel::L2Squared, Rows::F32(&arena), d, &refs, &mut many);
        for (q, query) in queries.iter().enumerate() {
            for i in (0..n).step_by(991) {
                let mut one = [0.0];
                scan(
                    Kernel::L2Squared,
                    Rows::F32(&arena[i * d..(i + 1) * d]),
                    d,
                    query,
                    None,
                    &mut one,
                );
                assert_eq!(many[q * n + i], one[0], "query {q} row {i}");
            }
        }
        let rows = [n - 1, 0, 5];
        let mut picked = [0.0; 3];
        scan(
            Kernel::Dot,
            Rows::F32(&arena),
            d,
            &q,
            Some(&rows),
            &mut picked,
        );
        assert_eq!(picked, [all[n - 1], all[0], all[5]]);
    }

    /// Every (query, row) of the matrix kernel against the single-search kernel, within
    /// the margin callers rely on, for batch and store sizes around the register tiles
    /// (1–70 queries, 1–100 rows, dimensions with and without a SIMD remainder) and for a
    /// product split across threads.
    #[test]
    fn the_matrix_kernel_agrees_with_single_dot_products_within_its_margin() {
        let check = |n: usize, d: usize, m: usize| {
            let arena: Vec<f32> = (0..n).flat_map(|i| vector(i as u64 + 7, d)).collect();
            let queries: Vec<Vec<f32>> = (0..m).map(|s| vector(s as u64 + 500, d)).collect();
            let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
            let mut out = vec![f32::NAN; m * n];
            dot_matrix(&arena, d, &refs, &mut out);
            let step = (n / 50).max(1);
            for (q, query) in queries.iter().enumerate() {
                let qn = dot(query, query).sqrt();
                for i in (0..n).step_by(step) {
                    let row = &arena[i * d..(i + 1) * d];
                    let one = dot(query, row);
                    let bound = dot_margin(d) / 2.0 * qn * dot(row, row).sqrt();
                    let got = out[q * n + i];
                    assert!(
                        (got - one).abs() <= bound,
                        "n {n} d {d} m {m}: query {q} row {i}: {got} vs {one}"
                    );
                    assert!((f64::from(got) - naive_dot(query, row)).abs() < 1e-3);
                }
            }
        };
        for (n, d, m) in [
            (1, 1, 1),
            (13, 3, 5),
            (25, 17, 33),
            (100, 384, 70),
            (7, 385, 64),
            (64, 16, 2),
        ] {
            check(n, d, m);
        }
        // Large enough to be split across threads (when the machine has several).
        check(PARALLEL_MIN_FLOATS / 64 / 3 + 5, 64, 3);
        // Nothing to score leaves zeros, never a panic.
        let mut out = vec![1.0; 4];
        dot_matrix(&[], 0, &[&[], &[]], &mut out);
        assert_eq!(out, [0.0; 4]);
    }
}
