//! Sequential chains: steps over a dynamic map of named values, each step's outputs
//! feeding later steps' inputs.
//!
//! The details and an example are on [`SequentialChain`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::PromptValues;
use catena_core::{Chain, Error, OutputParser, Result};
use serde::Serialize;
use serde_json::Value;

use crate::llm::LlmChain;

/// The dynamic map a sequential chain passes between steps.
pub type Values = serde_json::Map<String, Value>;

/// Why a sequential chain could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SequentialError {
    /// A step reads a variable that neither the chain's inputs nor an earlier step provide.
    #[error("step `{step}` needs variable `{variable}`, which no input or earlier step provides")]
    MissingVariable {
        /// The step's name (`"<output>"` for the chain's selected outputs).
        step: String,
        /// The variable.
        variable: String,
    },
    /// A step did not return one of the output keys it declares.
    #[error("step `{step}` did not return its output `{key}`")]
    MissingOutput {
        /// The step's name.
        step: String,
        /// The key.
        key: String,
    },
    /// Two steps (or a step and the chain's inputs) write the same key.
    #[error("step `{step}` writes `{key}`, which an input or earlier step already provides")]
    DuplicateOutput {
        /// The step's name.
        step: String,
        /// The key.
        key: String,
    },
    /// The chain has no steps.
    #[error("a sequential chain needs at least one step")]
    NoSteps,
    /// A step failed.
    #[error("step `{step}` failed: {source}")]
    Step {
        /// The step's name.
        step: String,
        /// Its error.
        source: Error,
    },
}

impl From<SequentialError> for Error {
    /// A failed step's own error is returned as it is (so retry and fallback still see
    /// it); the others become [`Error::Other`] with the [`SequentialError`] as source.
    fn from(e: SequentialError) -> Self {
        match e {
            SequentialError::Step { source, .. } => source,
            other => Error::Other {
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

/// One step of a [`SequentialChain`]: a chain from the values it reads to the values it
/// writes.
#[derive(Clone)]
pub struct SequentialStep {
    name: String,
    input_keys: Vec<String>,
    output_keys: Vec<String>,
    chain: Arc<dyn Chain<Values, Values>>,
}

impl fmt::Debug for SequentialStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequentialStep")
            .field("name", &self.name)
            .field("input_keys", &self.input_keys)
            .field("output_keys", &self.output_keys)
            .finish_non_exhaustive()
    }
}

impl SequentialStep {
    /// A step running `chain` on the values named `input_keys` (and only those); it must
    /// return every key of `output_keys` (other keys it returns are ignored).
    pub fn new<C, S, T>(
        name: impl Into<String>,
        input_keys: impl IntoIterator<Item = S>,
        output_keys: impl IntoIterator<Item = T>,
        chain: C,
    ) -> Self
    where
        C: Chain<Values, Values> + 'static,
        S: Into<String>,
        T: Into<String>,
    {
        SequentialStep {
            name: name.into(),
            input_keys: input_keys.into_iter().map(Into::into).collect(),
            output_keys: output_keys.into_iter().map(Into::into).collect(),
            chain: Arc::new(chain),
        }
    }

    /// A step running an [`LlmChain`]: it reads the prompt's variables and writes the
    /// parsed output, serialised to JSON, under `output_key`.
    pub fn llm<P>(
        name: impl Into<String>,
        chain: LlmChain<P>,
        output_key: impl Into<String>,
    ) -> Self
    where
        P: OutputParser + 'static,
        P::Output: Serialize + Send + 'static,
    {
        let output_key = output_key.into();
        SequentialStep {
            name: name.into(),
            input_keys: chain.input_variables(),
            output_keys: vec![output_key.clone()],
            chain: Arc::new(LlmStep { chain, output_key }),
        }
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The keys the step reads.
    pub fn input_keys(&self) -> &[String] {
        &self.input_keys
    }

    /// The keys the step writes.
    pub fn output_keys(&self) -> &[String] {
        &self.output_keys
    }
}

struct LlmStep<P> {
    chain: LlmChain<P>,
    output_key: String,
}

#[async_trait]
impl<P> Chain<Values, Values> for LlmStep<P>
where
    P: OutputParser,
    P::Output: Serialize + Send + 'static,
{
    async fn invoke(&self, input: Values) -> Result<Values> {
        let output = self.chain.invoke(PromptValues::from(input)).await?;
        let value = serde_json::to_value(output)
            .map_err(|e| Error::serialization("serialising an LLM step's output", e))?;
        let mut out = Values::new();
        out.insert(self.output_key.clone(), value);
        Ok(out)
    }
}

/// Steps run in order over a [`Values`] map.
///
/// Each [`SequentialStep`] declares the keys it reads and the keys it writes. A
/// [`SequentialChain`] checks at build time that every step's inputs are produced by the
/// chain's declared inputs or an earlier step, and checks again at run time; a missing value
/// is [`SequentialError::MissingVariable`] naming the step and the variable.
///
/// ```
/// use std::sync::Arc;
/// use catena_core::prompt::PromptTemplate;
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::ChatModelExt;
/// use catena_chains::LlmChain;
/// use catena_chains::{SequentialChain, SequentialStep, Values};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let model = ScriptedChatModel::new().with_text("Tragedy at Sunset").with_text("A sad play.").boxed();
/// let title = LlmChain::text(PromptTemplate::new("Title for a play about {topic}")?, model.clone());
/// let review = LlmChain::text(PromptTemplate::new("Review the play {title}")?, model);
/// let chain = SequentialChain::builder()
///     .input_keys(["topic"])
///     .step(SequentialStep::llm("title", title, "title"))
///     .step(SequentialStep::llm("review", review, "review"))
///     .output_keys(["title", "review"])
///     .build()?;
///
/// let mut input = Values::new();
/// input.insert("topic".into(), "sunsets".into());
/// let out = chain.run(input).await?;
/// assert_eq!(out["review"], "A sad play.");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SequentialChain {
    steps: Vec<SequentialStep>,
    output_keys: Option<Vec<String>>,
}

/// Builds a [`SequentialChain`].
#[derive(Debug, Default)]
#[must_use]
pub struct SequentialChainBuilder {
    input_keys: Option<Vec<String>>,
    steps: Vec<SequentialStep>,
    output_keys: Option<Vec<String>>,
}

impl SequentialChainBuilder {
    /// Declares the keys callers give. With them, [`build`](Self::build) checks every
    /// step's inputs; without them (the default) the check happens at run time only.
    pub fn input_keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.input_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Appends a step.
    pub fn step(mut self, step: SequentialStep) -> Self {
        self.steps.push(step);
        self
    }

    /// Selects the keys the chain returns. Default: the whole map (inputs and every step's
    /// outputs).
    pub fn output_keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.output_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Checks the wiring and builds the chain.
    ///
    /// # Errors
    /// [`SequentialError::NoSteps`]; with declared input keys,
    /// [`SequentialError::MissingVariable`] for the first step input (or selected output)
    /// nothing provides, and [`SequentialError::DuplicateOutput`] for a key written twice.
    pub fn build(self) -> std::result::Result<SequentialChain, SequentialError> {
        if self.steps.is_empty() {
            return Err(SequentialError::NoSteps);
        }
        if let Some(inputs) = &self.input_keys {
            let mut available: BTreeSet<&str> = inputs.iter().map(String::as_str).collect();
            for step in &self.steps {
                if let Some(missing) = step
                    .input_keys
                    .iter()
                    .find(|k| !available.contains(k.as_str()))
                {
                    return Err(SequentialError::MissingVariable {
                        step: step.name.clone(),
                        variable: missing.clone(),
                    });
                }
                for key in &step.output_keys {
                    if !available.insert(key.as_str()) {
                        return Err(SequentialError::DuplicateOutput {
                            step: step.name.clone(),
                            key: key.clone(),
                        });
                    }
                }
            }
            if let Some(missing) = self
                .output_keys
                .iter()
                .flatten()
                .find(|k| !available.contains(k.as_str()))
            {
                return Err(SequentialError::MissingVariable {
                    step: "<output>".into(),
                    variable: missing.clone(),
                });
            }
        }
        Ok(SequentialChain {
            steps: self.steps,
            output_keys: self.output_keys,
        })
    }
}

impl SequentialChain {
    /// Starts a builder.
    pub fn builder() -> SequentialChainBuilder {
        SequentialChainBuilder::default()
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[SequentialStep] {
        &self.steps
    }

    /// Runs every step in order and returns the final map, or the selected outputs.
    ///
    /// # Errors
    /// [`SequentialError::MissingVariable`] when a step's input is absent,
    /// [`SequentialError::MissingOutput`] when a step does not return a declared output,
    /// [`SequentialError::Step`] with the step's own error.
    pub async fn run(&self, input: Values) -> std::result::Result<Values, SequentialError> {
        let mut values = input;
        for step in &self.steps {
            let mut step_input = Values::new();
            for key in &step.input_keys {
                let value =
                    values
                        .get(key)
                        .cloned()
                        .ok_or_else(|| SequentialError::MissingVariable {
                            step: step.name.clone(),
                            variable: key.clone(),
                        })?;
                step_input.insert(key.clone(), value);
            }
            let mut out =
                step.chain
                    .invoke(step_input)
                    .await
                    .map_err(|source| SequentialError::Step {
                        step: step.name.clone(),
                        source,
                    })?;
            for key in &step.output_keys {
                let value = out
                    .remove(key)
                    .ok_or_else(|| SequentialError::MissingOutput {
                        step: step.name.clone(),
                        key: key.clone(),
                    })?;
                values.insert(key.clone(), value);
            }
        }
        match &self.output_keys {
            None => Ok(values),
            Some(keys) => keys
                .iter()
                .map(|k| {
                    values.remove(k).map(|v| (k.clone(), v)).ok_or_else(|| {
                        SequentialError::MissingVariable {
                            step: "<output>".into(),
                            variable: k.clone(),
                        }
                    })
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Chain<Values, Values> for SequentialChain {
    async fn invoke(&self, input: Values) -> Result<Values> {
        Ok(self.run(input).await?)
    }
}
