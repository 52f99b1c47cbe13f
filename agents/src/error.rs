//! [`AgentError`]: why an agent stopped before its model gave a final answer.

use std::time::Duration;

use catena_core::Error;

/// A limit of the [`AgentExecutor`](crate::AgentExecutor) that ended a run.
///
/// The executor returns [`catena_core::Result`], like every other Catena component, so an
/// agent can sit inside a chain or be offered to another agent as a tool. A limit that stops
/// a run becomes [`catena_core::Error::Other`] with the typed [`AgentError`] kept as its
/// `source`; [`AgentError::from_error`] gets it back. With
/// [`EarlyStopping::Generate`](crate::EarlyStopping::Generate) the run is not ended; the
/// error is kept in [`AgentRun::stopped_by`](crate::AgentRun::stopped_by).
///
/// ```
/// use std::time::Duration;
/// use catena_agents::AgentError;
/// use catena_core::Error;
///
/// let err: Error = AgentError::MaxIterations { limit: 10 }.into();
/// assert_eq!(AgentError::from_error(&err), Some(&AgentError::MaxIterations { limit: 10 }));
/// assert!(err.to_string().contains("10 iterations"));
///
/// let timeout: Error = AgentError::TimeBudget { budget: Duration::from_secs(5) }.into();
/// assert!(AgentError::from_error(&timeout).is_some_and(AgentError::is_timeout));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The model asked for tools in each of `limit` turns and never gave a final answer.
    #[error("agent stopped after {limit} iterations without a final answer")]
    MaxIterations {
        /// The configured `max_iterations`.
        limit: usize,
    },
    /// The run did not finish within its overall deadline.
    #[error("agent ran past its time budget of {budget:?}")]
    TimeBudget {
        /// The configured `time_budget`.
        budget: Duration,
    },
    /// The tokens the model reported (summed over all calls) went over the budget.
    #[error("agent used {used} tokens, over its budget of {budget}")]
    TokenBudget {
        /// The configured `token_budget`.
        budget: u64,
        /// Tokens used when the executor stopped.
        used: u64,
    },
    /// The [`ReactAgent`](crate::ReactAgent)'s model twice in a row wrote text that is
    /// neither a well-formed action nor a final answer (the first time it was reminded of
    /// the format).
    #[error("agent model output could not be parsed ({reason}): {}", shown(output))]
    OutputParse {
        /// The model's last output, as written.
        output: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl AgentError {
    /// The agent error kept inside a core [`Error`], if it is one.
    pub fn from_error(error: &Error) -> Option<&AgentError> {
        match error {
            Error::Other {
                source: Some(source),
                ..
            } => source.downcast_ref::<AgentError>(),
            _ => None,
        }
    }

    /// Whether this is the time budget running out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AgentError::TimeBudget { .. })
    }
}

/// The model's output as shown in an error: its first 200 characters, Debug-quoted, with
/// `…` when cut.
fn shown(output: &str) -> String {
    let shown: String = output.chars().take(200).collect();
    let more = if shown.len() < output.len() {
        "…"
    } else {
        ""
    };
    format!("{shown:?}{more}")
}

impl From<AgentError> for Error {
    fn from(e: AgentError) -> Self {
        Error::Other {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}
