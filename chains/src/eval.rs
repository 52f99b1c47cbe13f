//! Retrieval evaluation: recall@k, mean reciprocal rank and nDCG@k over a set of questions
//! with known relevant documents, usable as a test gate.
//!
//! The details and an example are on [`evaluate_ranking`].

use std::collections::HashSet;

use catena_core::{Result, Retriever};

/// One question and the ids of the documents that answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalCase {
    /// The question.
    pub question: String,
    /// Ids of the relevant documents (document id, or derived id for documents without one).
    pub relevant: HashSet<String>,
}

impl EvalCase {
    /// A case from a question and its relevant ids.
    pub fn new<S: Into<String>>(
        question: impl Into<String>,
        relevant: impl IntoIterator<Item = S>,
    ) -> Self {
        EvalCase {
            question: question.into(),
            relevant: relevant.into_iter().map(Into::into).collect(),
        }
    }
}

/// The scores of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseScores {
    /// The question.
    pub question: String,
    /// Share of the relevant documents found in the top k.
    pub recall_at_k: f64,
    /// 1 / rank of the first relevant document (0 when none is in the top k).
    pub reciprocal_rank: f64,
    /// Normalised discounted cumulative gain at k (binary relevance).
    pub ndcg_at_k: f64,
}

/// Mean scores over all cases, and each case's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// The cut-off.
    pub k: usize,
    /// Mean recall@k.
    pub recall_at_k: f64,
    /// Mean reciprocal rank (within the top k).
    pub mrr: f64,
    /// Mean nDCG@k.
    pub ndcg_at_k: f64,
    /// Per-case scores, in case order.
    pub cases: Vec<CaseScores>,
}

impl EvalReport {
    /// Whether every mean reaches its minimum — for use as a test gate.
    pub fn passes(&self, min_recall: f64, min_mrr: f64, min_ndcg: f64) -> bool {
        self.recall_at_k >= min_recall && self.mrr >= min_mrr && self.ndcg_at_k >= min_ndcg
    }
}

fn score_case(case: &EvalCase, ranked: &[String], k: usize) -> CaseScores {
    let top: Vec<&String> = ranked.iter().take(k).collect();
    let hits = top
        .iter()
        .filter(|id| case.relevant.contains(id.as_str()))
        .count();
    let recall = if case.relevant.is_empty() {
        1.0
    } else {
        hits as f64 / case.relevant.len() as f64
    };
    let rr = top
        .iter()
        .position(|id| case.relevant.contains(id.as_str()))
        .map_or(0.0, |p| 1.0 / (p as f64 + 1.0));
    let dcg: f64 = top
        .iter()
        .enumerate()
        .filter(|(_, id)| case.relevant.contains(id.as_str()))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..case.relevant.len().min(k))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    CaseScores {
        question: case.question.clone(),
        recall_at_k: recall,
        reciprocal_rank: rr,
        ndcg_at_k: if ideal > 0.0 { dcg / ideal } else { 1.0 },
    }
}

/// Scores rankings that were already computed: `ranked[i]` is the ordered list of ids
/// returned for `cases[i]`. Missing rankings count as empty.
///
/// ```
/// use catena_chains::{evaluate_ranking, EvalCase};
///
/// let cases = vec![EvalCase::new("q1", ["a"]), EvalCase::new("q2", ["b", "c"])];
/// let ranked = vec![vec!["a".to_string(), "x".into()], vec!["x".to_string(), "c".into()]];
/// let report = evaluate_ranking(&cases, &ranked, 2);
/// assert_eq!(report.recall_at_k, 0.75); // 1/1 and 1/2
/// assert_eq!(report.mrr, 0.75);         // 1/1 and 1/2
/// assert!(report.passes(0.7, 0.7, 0.0));
/// ```
pub fn evaluate_ranking(cases: &[EvalCase], ranked: &[Vec<String>], k: usize) -> EvalReport {
    let empty = Vec::new();
    let scores: Vec<CaseScores> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| score_case(c, ranked.get(i).unwrap_or(&empty), k))
        .collect();
    let n = scores.len().max(1) as f64;
    EvalReport {
        k,
        recall_at_k: scores.iter().map(|s| s.recall_at_k).sum::<f64>() / n,
        mrr: scores.iter().map(|s| s.reciprocal_rank).sum::<f64>() / n,
        ndcg_at_k: scores.iter().map(|s| s.ndcg_at_k).sum::<f64>() / n,
        cases: scores,
    }
}

/// Runs `retriever` on every case's question (one after another) and scores the top `k`.
/// Documents are identified by their id, or their derived id when they have none.
///
/// # Errors
/// The first retriever failure.
pub async fn evaluate(
    retriever: &dyn Retriever,
    cases: &[EvalCase],
    k: usize,
) -> Result<EvalReport> {
    let mut ranked = Vec::with_capacity(cases.len());
    for case in cases {
        let docs = retriever.retrieve(&case.question).await?;
        ranked.push(
            docs.iter()
                .map(|d| d.id_or_derived().into_inner())
                .collect::<Vec<_>>(),
        );
    }
    Ok(evaluate_ranking(cases, &ranked, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndcg_rewards_early_hits() {
        let case = EvalCase::new("q", ["a", "b"]);
        let best = score_case(&case, &["a".into(), "b".into(), "x".into()], 3);
        assert!((best.ndcg_at_k - 1.0).abs() < 1e-12);
        let late = score_case(&case, &["x".into(), "a".into(), "b".into()], 3);
        let want = (1.0 / 3f64.log2() + 1.0 / 4f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((late.ndcg_at_k - want).abs() < 1e-12);
        assert_eq!(late.reciprocal_rank, 0.5);
        let miss = score_case(&case, &["x".into()], 3);
        assert_eq!(
            (miss.recall_at_k, miss.reciprocal_rank, miss.ndcg_at_k),
            (0.0, 0.0, 0.0)
        );
    }
}
