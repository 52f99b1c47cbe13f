//! Tools: functions a model can call.
//!
//! A [`Tool`] has a name, a description, JSON-schema parameters and an async `call`. Most
//! tools are easiest to write as a [`TypedTool`]: arguments and output are Rust types, the
//! JSON schema is derived with `schemars`, and [`TypedTool::into_tool`] erases it to an
//! `Arc<dyn Tool>`.
//!
//! ```
//! use catena_core::{Tool, ToolError, TypedTool};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct AddArgs {
//!     /// First addend.
//!     a: i64,
//!     /// Second addend.
//!     b: i64,
//! }
//!
//! struct Add;
//!
//! #[async_trait::async_trait]
//! impl TypedTool for Add {
//!     type Args = AddArgs;
//!     type Output = i64;
//!     fn name(&self) -> &str { "add" }
//!     fn description(&self) -> &str { "Adds two integers." }
//!     async fn call(&self, args: AddArgs) -> Result<i64, ToolError> {
//!         args.a.checked_add(args.b).ok_or_else(|| ToolError::execution("overflow"))
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let tool = Add.into_tool();
//! assert_eq!(tool.parameters()["properties"]["a"]["type"], "integer");
//! let out = tool.call(serde_json::json!({"a": 2, "b": 3})).await.unwrap();
//! assert_eq!(out.content, serde_json::json!(5));
//! // Bad arguments are reported back to the model, not a crash.
//! let err = tool.call(serde_json::json!({"a": "two"})).await.unwrap_err();
//! assert!(matches!(err, ToolError::InvalidArguments(_)));
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments do not match the tool's schema. Send this back to the model so it can
    /// correct itself.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("tool failed: {0}")]
    Execution(String),
    /// No tool of this name is registered.
    #[error("unknown tool `{0}`")]
    NotFound(String),
}

impl ToolError {
    /// Builds [`ToolError::InvalidArguments`].
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        ToolError::InvalidArguments(message.into())
    }

    /// Builds [`ToolError::Execution`].
    pub fn execution(message: impl Into<String>) -> Self {
        ToolError::Execution(message.into())
    }
}

/// What a tool returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolOutput {
    /// The result, as JSON.
    pub content: Value,
}

impl ToolOutput {
    /// Wraps a JSON value.
    pub fn new(content: impl Into<Value>) -> Self {
        ToolOutput {
            content: content.into(),
        }
    }

    /// The output as text for a tool-result message: strings as they are, anything else as
    /// compact JSON.
    pub fn to_text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The description of a tool that is sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolDefinition {
    /// The tool's name.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// The JSON schema of the arguments object.
    pub parameters: Value,
}

impl ToolDefinition {
    /// A definition from its parts.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        ToolDefinition {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// A function a model can call, object-safe so tools of different types can sit in one
/// `Vec<Arc<dyn Tool>>`.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls the tool by.
    fn name(&self) -> &str;
    /// What the tool does, written for the model.
    fn description(&self) -> &str;
    /// The JSON schema of the arguments object.
    fn parameters(&self) -> &Value;
    /// Runs the tool.
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] when `args` do not fit the schema,
    /// [`ToolError::Execution`] when the tool fails.
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError>;

    /// The definition to send to a model.
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(self.name(), self.description(), self.parameters().clone())
    }

    /// Whether running one call twice has the same effect as running it once (a lookup, a
    /// PUT of a whole value, a request carrying [`ToolCallContext::idempotency_key`] to a
    /// service that honours it). A durable run that stopped while such a call was in flight
    /// runs it again on resume; any other interrupted call is reported to the model as
    /// interrupted, never repeated. Default `false`.
    fn idempotent(&self) -> bool {
        false
    }

    /// Whether a person must approve each call before it runs (durable runs stop with an
    /// `approval_required` event and wait for a decision). Default `false`.
    fn requires_approval(&self) -> bool {
        false
    }

    /// Runs the tool for one call of a durable agent run. `ctx` names the run and the call
    /// and carries a stable idempotency key to pass to the outside world. The default calls
    /// [`call`](Self::call).
    ///
    /// # Errors
    /// As for [`call`](Self::call).
    async fn call_with_context(
        &self,
        args: Value,
        ctx: &ToolCallContext,
    ) -> Result<ToolOutput, ToolError> {
        let _ = ctx;
        self.call(args).await
    }
}

/// Which call of which run a tool is running for ([`Tool::call_with_context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCallContext {
    /// The durable run.
    pub run_id: String,
    /// The model's id for the call.
    pub call_id: String,
    /// `{run_id}:{call_id}`: the same for every attempt of this call, across restarts and
    /// replicas, different for every other call. Send it as an `Idempotency-Key` header (or
    /// the like) so the outside world applies the effect once.
    pub idempotency_key: String,
}

impl ToolCallContext {
    /// The context of call `call_id` of run `run_id`.
    pub fn new(run_id: impl Into<String>, call_id: impl Into<String>) -> Self {
        let (run_id, call_id) = (run_id.into(), call_id.into());
        ToolCallContext {
            idempotency_key: format!("{run_id}:{call_id}"),
            run_id,
            call_id,
        }
    }
}

#[async_trait]
impl<T: Tool + ?Sized> Tool for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn description(&self) -> &str {
        (**self).description()
    }
    fn parameters(&self) -> &Value {
        (**self).parameters()
    }
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        (**self).call(args).await
    }
    fn idempotent(&self) -> bool {
        (**self).idempotent()
    }
    fn requires_approval(&self) -> bool {
        (**self).requires_approval()
    }
    async fn call_with_context(
        &self,
        args: Value,
        ctx: &ToolCallContext,
    ) -> Result<ToolOutput, ToolError> {
        (**self).call_with_context(args, ctx).await
    }
}

#[async_trait]
impl<T: Tool + ?Sized> Tool for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn description(&self) -> &str {
        (**self).description()
    }
    fn parameters(&self) -> &Value {
        (**self).parameters()
    }
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        (**self).call(args).await
    }
    fn idempotent(&self) -> bool {
        (**self).idempotent()
    }
    fn requires_approval(&self) -> bool {
        (**self).requires_approval()
    }
    async fn call_with_context(
        &self,
        args: Value,
        ctx: &ToolCallContext,
    ) -> Result<ToolOutput, ToolError> {
        (**self).call_with_context(args, ctx).await
    }
}

/// A tool with typed arguments and output; its JSON schema is derived from `Args`.
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    /// The arguments, deserialised from the model's JSON.
    type Args: DeserializeOwned + JsonSchema + Send;
    /// The result, serialised to JSON for the model.
    type Output: Serialize + Send;
    /// The name the model calls the tool by.
    fn name(&self) -> &str;
    /// What the tool does, written for the model.
    fn description(&self) -> &str;
    /// Runs the tool.
    ///
    /// # Errors
    /// Whatever the tool reports; prefer [`ToolError::Execution`].
    async fn call(&self, args: Self::Args) -> Result<Self::Output, ToolError>;

    /// Erases this tool to an `Arc<dyn Tool>`, deriving its schema once.
    fn into_tool(self) -> Arc<dyn Tool>
    where
        Self: Sized,
    {
        Arc::new(TypedToolAdapter::new(self))
    }
}

/// The JSON schema of `T` as a tool-parameters object (no `$schema` key, `title` removed).
pub fn schema_for<T: JsonSchema>() -> Value {
    let schema = schemars::schema_for!(T);
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
    }
    value
}

/// Adapts a [`TypedTool`] to the object-safe [`Tool`] trait.
pub struct TypedToolAdapter<T> {
    inner: T,
    parameters: Value,
}

impl<T: TypedTool> TypedToolAdapter<T> {
    /// Wraps `inner`, deriving its parameters schema.
    pub fn new(inner: T) -> Self {
        TypedToolAdapter {
            parameters: schema_for::<T::Args>(),
            inner,
        }
    }

    /// The wrapped tool.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: TypedTool> fmt::Debug for TypedToolAdapter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedToolAdapter")
            .field("name", &self.inner.name())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<T: TypedTool> Tool for TypedToolAdapter<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn description(&self) -> &str {
        self.inner.description()
    }
    fn parameters(&self) -> &Value {
        &self.parameters
    }
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        let args: T::Args =
            serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let out = self.inner.call(args).await?;
        let content = serde_json::to_value(out)
            .map_err(|e| ToolError::Execution(format!("could not serialise output: {e}")))?;
        Ok(ToolOutput { content })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, JsonSchema)]
    struct Args {
        /// The city to look up.
        city: String,
        /// Units, default metric.
        #[serde(default)]
        imperial: bool,
    }

    struct Weather;

    #[async_trait]
    impl TypedTool for Weather {
        type Args = Args;
        type Output = serde_json::Value;
        fn name(&self) -> &str {
            "weather"
        }
        fn description(&self) -> &str {
            "Weather for a city."
        }
        async fn call(&self, args: Args) -> Result<Self::Output, ToolError> {
            if args.city.is_empty() {
                return Err(ToolError::execution("no city"));
            }
            Ok(serde_json::json!({"city": args.city, "imperial": args.imperial}))
        }
    }

    #[test]
    fn typed_tool_schema_and_calls() {
        let tool = Weather.into_tool();
        let p = tool.parameters();
        assert_eq!(p["type"], "object");
        assert_eq!(
            p["properties"]["city"]["description"],
            "The city to look up."
        );
        assert_eq!(p["required"], serde_json::json!(["city"]));
        assert!(p.get("$schema").is_none());
        let def = tool.definition();
        assert_eq!(
            (def.name.as_str(), def.description.as_str()),
            ("weather", "Weather for a city.")
        );
        futures::executor::block_on(async {
            let out = tool
                .call(serde_json::json!({"city": "Oslo"}))
                .await
                .unwrap();
            assert_eq!(out.content["imperial"], false);
            assert_eq!(out.to_text(), r#"{"city":"Oslo","imperial":false}"#);
            let err = tool.call(serde_json::json!({})).await.unwrap_err();
            assert!(
                matches!(err, ToolError::InvalidArguments(ref m) if m.contains("city")),
                "{err}"
            );
            let err = tool
                .call(serde_json::json!({"city": ""}))
                .await
                .unwrap_err();
            assert_eq!(err, ToolError::Execution("no city".into()));
        });
    }
}
