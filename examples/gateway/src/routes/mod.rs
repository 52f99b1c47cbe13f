//! The HTTP handlers, one file per endpoint group: [`documents`] (ingest), [`query`] (RAG
//! answers), [`tasks`] (delegation to the agent service), [`runs`] (durable task runs:
//! events, approvals, resume) and [`health`] (pages, probes,
//! metrics). What they share sits below them: the request [`body`] and its field checks,
//! the [`upstream`] calls (retrieval, budgets, upstream errors) and [`sse`] streams.

mod body;
mod sse;
mod upstream;

pub(crate) use upstream::{limits_unavailable, Charge};

pub(crate) mod documents;
pub(crate) mod health;
pub(crate) mod query;
pub(crate) mod runs;
pub(crate) mod tasks;
