//! The graph of the in-memory store's HNSW index (feature `hnsw`): Malkov and Yashunin's
//! hierarchical navigable small world, kept compact: every point's vector as int8 codes
//! (one byte per dimension and one scale, as [`Quantization::Int8`](super::Quantization)
//! codes them) and its links as `u32` point ids in flat arrays. At 10,000 × 384 that is
//! about 5 MB, where a graph of boxed nodes holding full-precision copies took 32 MB.
//!
//! The codes only steer the walk: the index scores the candidates it returns again against
//! the store's full-precision vectors. The graph keeps the codes of deleted points too, so
//! walks still pass through them (the index never returns them).
//!
//! ```text
//! insert: a level per point (deterministic, from its id), a greedy descent to that level,
//!         then at each level below a beam search of `ef_construction` candidates, of
//!         which the heuristic of the paper (a candidate closer to a kept neighbour than
//!         to the point is skipped) keeps `m`; the neighbours link back, pruned the same
//!         way when full (`2 × m` links at level 0, `m` above).
//! search: greedy descent to level 0, then a beam of `ef` results that pass the filter
//!         (points that fail it are still walked through).
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use super::kernel::dot_i8;
use super::quant::quantize;

/// Levels of the graph: a point's level is capped one below this (with `m` 2, a level past
/// 15 comes up about once in 2¹⁶ points).
const MAX_LEVELS: usize = 16;

/// Marks a point without upper levels in `upper_at` (and is no point's id).
const NONE: u32 = u32::MAX;

/// Links a point keeps to copies of itself (points at distance 0 by their codes).
const MAX_COPIES: usize = 2;

/// What the graph measures between two of its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `1 - a · b` of unit-length vectors (cosine).
    Angular,
    /// `|a - b|²` (Euclidean; the square ranks as the distance does).
    L2Squared,
}

/// A distance with a total order, and the point it is to.
#[derive(Debug, Clone, Copy)]
struct Near {
    dist: f32,
    point: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.point.cmp(&other.point))
    }
}

/// Int8 codes of a vector (a query or a point): `v ≈ scale × codes`, and `|v|²`.
#[derive(Debug, Clone, Copy)]
struct Coded<'a> {
    codes: &'a [i8],
    scale: f32,
    square: f32,
}

/// The points' codes, point `p` at `codes[p × d..]`.
#[derive(Debug, Default)]
struct Vectors {
    kind: Option<Kind>,
    d: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// `|v|²` of each point (Euclidean; 1 for unit vectors).
    squares: Vec<f32>,
}

impl Vectors {
    fn len(&self) -> usize {
        self.scales.len()
    }

    #[inline(always)]
    fn point(&self, p: u32) -> Coded<'_> {
        let p = p as usize;
        Coded {
            codes: self.codes.get(p * self.d..(p + 1) * self.d).unwrap_or(&[]),
            scale: self.scales.get(p).copied().unwrap_or(0.0),
            square: self.squares.get(p).copied().unwrap_or(0.0),
        }
    }

    /// The distance from `q` to point `p`: never negative, never NaN (a rounding
    /// `1 - a · b` of two equal unit vectors can come out a hair below zero).
    #[inline(always)]
    fn distance(&self, q: Coded<'_>, p: u32) -> f32 {
        let r = self.point(p);
        let dot = dot_i8(q.codes, r.codes) as f32 * q.scale * r.scale;
        let d = match self.kind {
            Some(Kind::L2Squared) => q.square + r.square - 2.0 * dot,
            _ => 1.0 - dot,
        };
        if d >= 0.0 {
            d
        } else if d.is_nan() {
            f32::INFINITY
        } else {
            0.0
        }
    }

    /// Appends the codes of `v` (scaled by `unit`, `1 / |v|` for the angular distance).
    fn push(&mut self, v: &[f32], unit: f32) {
        let start = self.codes.len();
        self.codes.resize(start + self.d, 0);
        let out = self.codes.get_mut(start..).unwrap_or(&mut []);
        let scale = if v.len() == out.len() {
            quantize(v, unit, out)
        } else {
            0.0
        };
        let square = match self.kind {
            Some(Kind::L2Squared) => v.iter().map(|x| x * x).sum(),
            _ => 1.0,
        };
        self.scales.push(scale);
        self.squares.push(square);
    }
}

/// The links of every point: level 0 in fixed blocks of `1 + m0` (a count, then the
/// links), the upper levels of the few points that have them in blocks of `1 + m`.
#[derive(Debug, Default)]
struct Links {
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    /// Where a point's level-1 block starts in `upper` ([`NONE`] at level 0).
    upper_at: Vec<u32>,
    upper: Vec<u32>,
}

impl Links {
    /// The block of `p`'s links at `level`: its start in `layer0` or `upper`, and capacity.
    #[inline(always)]
    fn block(&self, p: u32, level: usize) -> Option<(bool, usize, usize)> {
        if level == 0 {
            return Some((true, p as usize * (1 + self.m0), self.m0));
        }
        let at = *self.upper_at.get(p as usize)?;
        let top = usize::from(*self.levels.get(p as usize)?);
        if at == NONE || level > top {
            return None;
        }
        Some((false, at as usize + (level - 1) * (1 + self.m), self.m))
    }

    #[inline(always)]
    fn neighbours(&self, p: u32, level: usize) -> &[u32] {
        let Some((zero, start, cap)) = self.block(p, level) else {
            return &[];
        };
        let table = if zero { &self.layer0 } else { &self.upper };
        let Some(&count) = table.get(start) else {
            return &[];
        };
        let n = (count as usize).min(cap);
        table.get(start + 1..start + 1 + n).unwrap_or(&[])
    }

    fn set(&mut self, p: u32, level: usize, to: impl IntoIterator<Item = u32>) {
        let Some((zero, start, cap)) = self.block(p, level) else {
            return;
        };
        let table = if zero {
            &mut self.layer0
        } else {
            &mut self.upper
        };
        let Some(block) = table.get_mut(start..start + 1 + cap) else {
            return;
        };
        let mut n = 0;
        for (slot, q) in block.iter_mut().skip(1).zip(to) {
            *slot = q;
            n += 1;
        }
        if let Some(count) = block.first_mut() {
            *count = n;
        }
    }

    /// Adds a point of `level` with no links yet (only level 0 once the upper table's
    /// offsets would pass `u32`).
    fn push(&mut self, level: usize) -> usize {
        let at = u32::try_from(self.upper.len())
            .ok()
            .filter(|&at| at != NONE);
        let level = if at.is_some() { level } else { 0 };
        self.levels.push(level as u8);
        self.layer0.extend(std::iter::repeat_n(0, 1 + self.m0));
        match at {
            Some(at) if level > 0 => {
                self.upper_at.push(at);
                self.upper
                    .extend(std::iter::repeat_n(0, level * (1 + self.m)));
            }
            _ => self.upper_at.push(NONE),
        }
        level
    }
}

/// Points seen by one walk: a mark per point, `epoch` meaning seen (no clearing between
/// walks).
#[derive(Debug, Default)]
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn start(&mut self, points: usize) {
        if self.marks.len() < points {
            self.marks.resize(points, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `p`; whether it was not marked yet.
    #[inline(always)]
    fn first(&mut self, p: u32) -> bool {
        match self.marks.get_mut(p as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// An HNSW graph over int8 codes (see the module documentation).
#[derive(Debug)]
pub(super) struct Hnsw {
    vectors: Vectors,
    links: Links,
    ef_construction: usize,
    /// `1 / ln m`: the level of a point is `⌊-ln u × ml⌋` for `u` uniform in `(0, 1]`.
    ml: f64,
    /// The entry point and its level.
    entry: Option<(u32, usize)>,
    /// Points linked in (ids with codes but no links, skipped by [`insert`](Self::insert)
    /// calls that jumped past them, are not counted).
    points: usize,
    arch: pulp::Arch,
    /// Visited marks for walks, a graph's worth of `u32`s each: one per concurrent search
    /// at most, reused, freed with the graph.
    pool: Mutex<Vec<Visited>>,
}

impl Hnsw {
    /// An empty graph of `d`-dimensional vectors: `m` links per point and level (`2 × m`
    /// at level 0, `m` at least 2), `ef_construction` candidates per insert.
    pub(super) fn new(kind: Kind, d: usize, m: usize, ef_construction: usize) -> Hnsw {
        let m = m.max(2);
        Hnsw {
            vectors: Vectors {
                kind: Some(kind),
                d,
                ..Vectors::default()
            },
            links: Links {
                m,
                m0: 2 * m,
                ..Links::default()
            },
            ef_construction: ef_construction.max(1),
            ml: 1.0 / (m as f64).ln(),
            entry: None,
            points: 0,
            arch: pulp::Arch::new(),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Makes room for `points` points in all, ahead of inserting them.
    /// A hint: room the allocator cannot give is not taken (the tables grow as needed).
    pub(super) fn reserve(&mut self, points: usize) {
        let more = points.min(NONE as usize).saturating_sub(self.vectors.len());
        let d = self.vectors.d;
        let per_point = d.saturating_add(13).saturating_add(4 * (1 + self.links.m0));
        if more
            .checked_mul(per_point)
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return;
        }
        // `try_reserve`: a hint larger than memory is skipped, not an abort.
        let _ = self.vectors.codes.try_reserve_exact(more * d);
        let _ = self.vectors.scales.try_reserve_exact(more);
        let _ = self.vectors.squares.try_reserve_exact(more);
        let _ = self.links.levels.try_reserve_exact(more);
        let _ = self.links.upper_at.try_reserve_exact(more);
        let _ = self
            .links
            .layer0
            .try_reserve_exact(more * (1 + self.links.m0));
    }

    /// Points linked into the graph (deleted ones included: the graph does not know).
    pub(super) fn points(&self) -> usize {
        self.points
    }

    /// The level of point `p`: the same for the same id in every build.
    fn level(&self, p: u32) -> usize {
        let h = splitmix64(u64::from(p) ^ 0x243F_6A88_85A3_08D3);
        // Uniform in (0, 1], from the hash's top 53 bits.
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-u.ln() * self.ml) as usize).min(MAX_LEVELS - 1)
    }

    /// Links in the vectors `(id, vector, unit)` in order, where `unit` scales the vector
    /// (`1 / |v|` for the angular distance, else 1). Ids must be new and increasing; ids
    /// skipped over stay unlinked (no walk reaches them). Vectors not `d` long, and ids
    /// past `u32::MAX - 1`, are left out.
    pub(super) fn insert<V: AsRef<[f32]>>(
        &mut self,
        points: impl IntoIterator<Item = (usize, V, f32)>,
    ) {
        let mut visited = self.visited();
        for (id, v, unit) in points {
            let v = v.as_ref();
            let Ok(p) = u32::try_from(id) else { continue };
            if id < self.vectors.len() || p == NONE || v.len() != self.vectors.d {
                continue;
            }
            while self.vectors.len() < id {
                self.vectors.push(&[], 1.0);
                self.links.push(0);
            }
            self.vectors.push(v, unit);
            let level = self.links.push(self.level(p));
            let arch = self.arch;
            arch.dispatch(Link {
                graph: self,
                p,
                level,
                visited: &mut visited,
            });
            self.points += 1;
        }
        self.pool
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push(visited);
    }

    /// The ids of the points nearest to `query` (unit length for the angular distance),
    /// nearest first: a beam of `ef` points for which `keep` holds (all without it).
    pub(super) fn search(
        &self,
        query: &[f32],
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<usize> {
        if query.len() != self.vectors.d || self.entry.is_none() {
            return Vec::new();
        }
        let mut codes = vec![0i8; query.len()];
        let scale = quantize(query, 1.0, &mut codes);
        let square = match self.vectors.kind {
            Some(Kind::L2Squared) => query.iter().map(|x| x * x).sum(),
            _ => 1.0,
        };
        let q = Coded {
            codes: &codes,
            scale,
            square,
        };
        let mut visited = self.visited();
        visited.start(self.vectors.len());
        let found = self.arch.dispatch(Search {
            graph: self,
            q,
            ef: ef.max(1),
            keep,
            visited: &mut visited,
        });
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(visited);
        found
    }

    /// Visited marks from the pool, or new ones.
    fn visited(&self) -> Visited {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Greedy descent from the entry point to `level`: the nearest point found.
    #[inline(always)]
    fn descend(&self, q: Coded<'_>, level: usize) -> Option<Near> {
        let (entry, top) = self.entry?;
        let mut cur = Near {
            dist: self.vectors.distance(q, entry),
            point: entry,
        };
        for l in (level + 1..=top).rev() {
            loop {
                let mut moved = false;
                for &n in self.links.neighbours(cur.point, l) {
                    let dist = self.vectors.distance(q, n);
                    if dist < cur.dist {
                        cur = Near { dist, point: n };
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        Some(cur)
    }

    /// The beam search of one level from `entries`: the (at most) `ef` nearest points that
    /// `keep` lets through, nearest first. Points it rejects are still walked through, and
    /// while fewer than `ef` are found the walk goes on.
    #[inline(always)]
    fn beam(
        &self,
        q: Coded<'_>,
        entries: &[Near],
        ef: usize,
        level: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
        visited: &mut Visited,
    ) -> Vec<Near> {
        // No beam holds more than every point: a caller's enormous `ef` only means "all".
        let ef = ef.clamp(1, self.vectors.len().max(1));
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef * 2);
        let mut found: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        let kept = |p: u32| keep.is_none_or(|k| k(p as usize));
        for &e in entries {
            if visited.first(e.point) {
                candidates.push(Reverse(e));
                if kept(e.point) {
                    found.push(e);
                }
            }
        }
        while found.len() > ef {
            found.pop();
        }
        while let Some(Reverse(c)) = candidates.pop() {
            let worst = found.peek().map_or(f32::INFINITY, |w| w.dist);
            if found.len() >= ef && c.dist > worst {
                break;
            }
            for &n in self.links.neighbours(c.point, level) {
                if !visited.first(n) {
                    continue;
                }
                let dist = self.vectors.distance(q, n);
                let worst = found.peek().map_or(f32::INFINITY, |w| w.dist);
                if found.len() < ef || dist < worst {
                    let near = Near { dist, point: n };
                    candidates.push(Reverse(near));
                    if kept(n) {
                        found.push(near);
                        if found.len() > ef {
                            found.pop();
                        }
                    }
                }
            }
        }
        found.into_sorted_vec()
    }

    /// Links point `p` (its codes and empty link blocks already pushed) into the graph.
    #[inline(always)]
    fn link(&mut self, p: u32, level: usize, visited: &mut Visited) {
        let Some((_, top)) = self.entry else {
            self.entry = Some((p, level));
            return;
        };
        let q = self.vectors.point(p);
        let Some(start) = self.descend(q, level) else {
            return;
        };
        let mut entries = vec![start];
        for l in (0..=level.min(top)).rev() {
            visited.start(self.vectors.len());
            let near = self.beam(q, &entries, self.ef_construction, l, None, visited);
            let near: Vec<Near> = near.into_iter().filter(|n| n.point != p).collect();
            let chosen = select(&self.vectors, &near, self.links.m);
            let chosen_points: Vec<u32> = chosen.iter().map(|n| n.point).collect();
            self.links.set(p, l, chosen_points.iter().copied());
            let cap = if l == 0 { self.links.m0 } else { self.links.m };
            for &n in &chosen_points {
                link_back(&self.vectors, &mut self.links, n, p, l, cap);
            }
            if !near.is_empty() {
                entries = near;
            }
        }
        if level > top {
            self.entry = Some((p, level));
        }
    }
}

/// The paper's neighbour heuristic: of `candidates` (nearest first), at most `m`, each
/// kept only when no neighbour kept before it is closer to it than the point is; and at
/// most [`MAX_COPIES`] copies of the point (same codes). Without that cap, copies would take
/// every link of one another (ties never prune) and wall themselves off from the rest.
#[inline(always)]
fn select(vectors: &Vectors, candidates: &[Near], m: usize) -> Vec<Near> {
    let mut kept: Vec<Near> = Vec::with_capacity(m);
    let mut copies = 0;
    for &c in candidates {
        if kept.len() >= m {
            break;
        }
        if c.dist <= 0.0 {
            if copies >= MAX_COPIES {
                continue;
            }
            copies += 1;
        }
        let cq = vectors.point(c.point);
        if kept.iter().all(|r| vectors.distance(cq, r.point) >= c.dist) {
            kept.push(c);
        }
    }
    kept
}

/// Adds `p` to `n`'s links at `level`; when they are full, keeps the heuristic's choice of
/// `cap` among them and `p`.
#[inline(always)]
fn link_back(vectors: &Vectors, links: &mut Links, n: u32, p: u32, level: usize, cap: usize) {
    let current = links.neighbours(n, level);
    if current.contains(&p) {
        return;
    }
    if current.len() < cap {
        let mut next = current.to_vec();
        next.push(p);
        links.set(n, level, next);
        return;
    }
    let nq = vectors.point(n);
    let mut all: Vec<Near> = current
        .iter()
        .chain(std::iter::once(&p))
        .map(|&x| Near {
            dist: vectors.distance(nq, x),
            point: x,
        })
        .collect();
    all.sort_unstable();
    let kept = select(vectors, &all, cap);
    links.set(n, level, kept.into_iter().map(|k| k.point));
}

/// [`Hnsw::link`] compiled for the CPU's best instruction set (the distance's integer dot
/// product vectorises as widening multiply-adds).
struct Link<'a> {
    graph: &'a mut Hnsw,
    p: u32,
    level: usize,
    visited: &'a mut Visited,
}

impl pulp::WithSimd for Link<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.graph.link(self.p, self.level, self.visited);
    }
}

/// [`Hnsw::search`]'s walk, compiled for the CPU's best instruction set.
struct Search<'a> {
    graph: &'a Hnsw,
    q: Coded<'a>,
    ef: usize,
    keep: Option<&'a dyn Fn(usize) -> bool>,
    visited: &'a mut Visited,
}

impl pulp::WithSimd for Search<'_> {
    type Output = Vec<usize>;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<usize> {
        let Search {
            graph,
            q,
            ef,
            keep,
            visited,
        } = self;
        let Some(start) = graph.descend(q, 0) else {
            return Vec::new();
        };
        graph
            .beam(q, &[start], ef, 0, keep, visited)
            .into_iter()
            .map(|n| n.point as usize)
            .collect()
    }
}

/// A well-mixed 64-bit hash (splitmix64's finaliser).
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pseudo-random unit vectors of `d` dimensions around 20 centres.
    fn vectors(n: usize, d: usize) -> Vec<Vec<f32>> {
        let value = |seed: u64| (splitmix64(seed) >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        (0..n)
            .map(|i| {
                let centre = (i % 20) as u64;
                let v: Vec<f32> = (0..d as u64)
                    .map(|j| {
                        value(centre * 1_000 + j) + 0.3 * value((i as u64 * 7_919 + j + 1) << 20)
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn graph(kind: Kind, vs: &[Vec<f32>]) -> Hnsw {
        let mut g = Hnsw::new(kind, vs[0].len(), 8, 64);
        g.insert(vs.iter().enumerate().map(|(i, v)| (i, v.as_slice(), 1.0)));
        g
    }

    /// The exact nearest `k` ids of `q` by the graph's own distance (the codes').
    fn brute(g: &Hnsw, q: &[f32], k: usize) -> Vec<usize> {
        let mut codes = vec![0i8; q.len()];
        let scale = quantize(q, 1.0, &mut codes);
        let square = q.iter().map(|x| x * x).sum();
        let coded = Coded {
            codes: &codes,
            scale,
            square,
        };
        let mut all: Vec<Near> = (0..g.vectors.len() as u32)
            .map(|p| Near {
                dist: g.vectors.distance(coded, p),
                point: p,
            })
            .collect();
        all.sort();
        all.into_iter().take(k).map(|n| n.point as usize).collect()
    }

    #[test]
    fn links_stay_within_capacity_and_point_at_other_linked_points() {
        let vs = vectors(1_500, 24);
        let g = graph(Kind::Angular, &vs);
        assert_eq!(g.points(), 1_500);
        let uppers = g.links.levels.iter().filter(|&&l| l > 0).count();
        // About one point in m = 8 has upper levels.
        assert!(
            (100..300).contains(&uppers),
            "{uppers} points above level 0"
        );
        let (_, top) = g.entry.unwrap();
        assert_eq!(top, usize::from(*g.links.levels.iter().max().unwrap()));
        for p in 0..1_500u32 {
            let level = usize::from(g.links.levels[p as usize]);
            assert!(
                !g.links.neighbours(p, 0).is_empty(),
                "point {p} has no links"
            );
            for l in 0..=level {
                let ns = g.links.neighbours(p, l);
                assert!(ns.len() <= if l == 0 { 16 } else { 8 });
                for &n in ns {
                    assert_ne!(n, p);
                    assert!(usize::from(g.links.levels[n as usize]) >= l);
                }
            }
            assert!(g.links.neighbours(p, level + 1).is_empty());
        }
    }

    #[test]
    fn searches_find_the_nearest_points_by_their_codes() {
        for kind in [Kind::Angular, Kind::L2Squared] {
            let vs = vectors(2_000, 32);
            let g = graph(kind, &vs);
            let queries = vectors(2_100, 32).split_off(2_000);
            let mut found = 0;
            for q in &queries {
                let got = g.search(q, 40, None);
                assert_eq!(got.len(), 40);
                let truth = brute(&g, q, 10);
                found += truth.iter().filter(|t| got[..10].contains(t)).count();
            }
            assert!(found >= 980, "{kind:?}: {found} of the true top 10s found");
        }
    }

    #[test]
    fn a_filtered_search_walks_through_the_points_it_rejects() {
        let vs = vectors(1_000, 16);
        let g = graph(Kind::Angular, &vs);
        let only = |id: usize| id % 10 == 3;
        let got = g.search(&vs[0], 20, Some(&only));
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|&id| only(id)));
        // Point 0's own cluster holds ids 0, 20, 40, ...: none end in 3, yet the walk
        // reaches the nearest matching ones.
        let truth: Vec<usize> = brute(&g, &vs[0], 1_000)
            .into_iter()
            .filter(|&id| only(id))
            .take(20)
            .collect();
        let hit = truth.iter().filter(|t| got.contains(t)).count();
        assert!(hit >= 18, "{hit} of the 20 nearest matching points");
        let none = |_: usize| false;
        assert!(g.search(&vs[0], 5, Some(&none)).is_empty());
    }

    #[test]
    fn skipped_ids_bad_lengths_and_repeats_are_left_out() {
        let vs = vectors(40, 8);
        let mut g = Hnsw::new(Kind::L2Squared, 8, 4, 16);
        let short = [1.0f32; 3];
        g.insert([
            (0, vs[0].as_slice(), 1.0),
            (1, vs[1].as_slice(), 1.0),
            (5, vs[5].as_slice(), 1.0),
            (6, &short[..], 1.0),
            (6, vs[6].as_slice(), 1.0),
            (6, vs[7].as_slice(), 1.0),
            (3, vs[3].as_slice(), 1.0),
        ]);
        assert_eq!(g.points(), 4);
        let mut got = g.search(&vs[2], 10, None);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 5, 6]);
        assert!(g.search(&short, 10, None).is_empty());
        assert!(Hnsw::new(Kind::Angular, 8, 4, 16)
            .search(&vs[0], 3, None)
            .is_empty());
    }

    #[test]
    fn codes_of_very_long_vectors_do_not_wrap() {
        // 127² × 140,000 passes 2³¹: summed in 32 bits, two equal vectors came out far apart.
        let d = 140_000;
        let v = vec![1.0f32; d];
        let mut g = Hnsw::new(Kind::Angular, d, 4, 8);
        g.insert([(0, v.as_slice(), 1.0 / (d as f32).sqrt())]);
        let mut codes = vec![0i8; d];
        let unit: Vec<f32> = v.iter().map(|x| x / (d as f32).sqrt()).collect();
        let scale = quantize(&unit, 1.0, &mut codes);
        let q = Coded {
            codes: &codes,
            scale,
            square: 1.0,
        };
        let dist = g.vectors.distance(q, 0);
        assert!(dist.abs() < 1e-3, "{dist}");
    }

    #[test]
    fn the_same_points_build_the_same_graph() {
        let vs = vectors(300, 12);
        let (a, b) = (graph(Kind::Angular, &vs), graph(Kind::Angular, &vs));
        assert_eq!(a.links.layer0, b.links.layer0);
        assert_eq!(a.links.upper, b.links.upper);
        assert_eq!(a.entry, b.entry);
    }
}
