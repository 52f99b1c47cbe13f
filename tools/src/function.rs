//! Tools from plain async functions.
//!
//! [`tool_fn`] turns a name, a description and an async closure taking a typed argument
//! struct into an `Arc<dyn Tool>`. The JSON schema is derived from the argument type with
//! `schemars`, so doc comments on its fields become the parameter descriptions the model
//! reads. Arguments that do not fit the type come back as
//! [`ToolError::InvalidArguments`] naming the problem, which the model can correct.
//!
//! ```
//! use catena_core::{Tool, ToolError};
//! use catena_tools::tool_fn;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Greet {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! let greet = tool_fn("greet", "Greets someone by name.", |args: Greet| async move {
//!     if args.name.is_empty() {
//!         return Err(ToolError::execution("nobody to greet"));
//!     }
//!     Ok(format!("Hello, {}!", args.name))
//! });
//!
//! assert_eq!(greet.parameters()["properties"]["name"]["description"], "Who to greet.");
//! # futures::executor::block_on(async {
//! let out = greet.call(serde_json::json!({"name": "Ada"})).await.unwrap();
//! assert_eq!(out.to_text(), "Hello, Ada!");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Tool, ToolError, TypedTool};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Makes a tool from an async function of typed arguments.
///
/// `A` is deserialised from the model's arguments and its JSON schema becomes the tool's
/// parameters; `O` is serialised as the tool's output. The function may fail with any
/// [`ToolError`]; prefer [`ToolError::Execution`] for real failures and
/// [`ToolError::InvalidArguments`] for arguments that are well-typed but unacceptable (the
/// model gets to retry).
pub fn tool_fn<A, O, F, Fut>(
    name: impl Into<String>,
    description: impl Into<String>,
    f: F,
) -> Arc<dyn Tool>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
{
    FnTool::new(name, description, f).into_tool()
}

/// A [`TypedTool`] backed by an async function; made by [`tool_fn`] or [`FnTool::new`].
pub struct FnTool<A, O, F> {
    name: String,
    description: String,
    f: F,
    _types: PhantomData<fn(A) -> O>,
}

impl<A, O, F> FnTool<A, O, F> {
    /// A tool called `name` that runs `f`.
    pub fn new(name: impl Into<String>, description: impl Into<String>, f: F) -> Self {
        FnTool {
            name: name.into(),
            description: description.into(),
            f,
            _types: PhantomData,
        }
    }
}

impl<A, O, F> fmt::Debug for FnTool<A, O, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<A, O, F, Fut> TypedTool for FnTool<A, O, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
{
    type Args = A;
    type Output = O;

    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn call(&self, args: A) -> Result<O, ToolError> {
        (self.f)(args).await
    }
}
