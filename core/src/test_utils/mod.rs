//! Test doubles and conformance suites (feature `test-utils`).
//!
//! The doubles are for **tests**: a [`ScriptedChatModel`] that answers from a script and
//! records what it was asked, a [`DeterministicEmbedder`] that turns text into stable
//! bag-of-words vectors, and a [`SpanRecorder`] that keeps the spans instrumented code
//! reports. They are never defaults in a program.
//!
//! The conformance suites are the contract every backend runs against itself:
//! [`ChatModelConformance`], [`embedder_conformance`], [`vector_store_conformance`],
//! [`chat_history_conformance`] and [`record_manager_conformance`].
//! They fail by panicking with a message that names the broken rule, like `assert!`.
//!
//! ```
//! use catena_core::test_utils::{ChatModelConformance, ScriptedChatModel};
//!
//! # futures::executor::block_on(async {
//! ChatModelConformance::new()
//!     .deterministic(true)
//!     .run(&ScriptedChatModel::echo())
//!     .await;
//! # });
//! ```

// Conformance suites are test code: they report failures by panicking, like `assert!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chat_conformance;
mod checkpoint_conformance;
mod embedder;
mod embedder_conformance;
mod history_conformance;
mod record_conformance;
mod scripted;
mod spans;
mod store_conformance;

pub use chat_conformance::ChatModelConformance;
pub use checkpoint_conformance::checkpointer_conformance;
pub use embedder::DeterministicEmbedder;
pub use embedder_conformance::embedder_conformance;
pub use history_conformance::chat_history_conformance;
pub use record_conformance::record_manager_conformance;
pub use scripted::ScriptedChatModel;
pub use spans::{SpanFields, SpanRecorder};
pub use store_conformance::{vector_store_conformance, VectorStoreConformance};

/// This process's resident set in bytes (`VmRSS` of `/proc/self/status`), or `None` where
/// there is no such file (not Linux). Memory tests measure its growth around the work they
/// check, in a test binary of their own so that no other test allocates meanwhile.
pub fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
