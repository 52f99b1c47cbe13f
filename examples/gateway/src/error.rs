//! [`GatewayError`]: why the gateway could not start or run. Failed *requests* are
//! [`Problem`](crate::problem::Problem)s instead.
//!
//! ```
//! use example_gateway::GatewayError;
//!
//! let e = GatewayError::Config("agent.url is not a URL".into());
//! assert_eq!(e.to_string(), "configuration: agent.url is not a URL");
//! ```

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A configuration value is wrong; the message names it.
    #[error("configuration: {0}")]
    Config(String),
    /// A backend could not be set up.
    #[error("backend: {0}")]
    Backend(#[from] catena_core::Error),
    /// Listening or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
