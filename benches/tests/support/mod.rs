//! Shared test support.
pub mod retrieval;
