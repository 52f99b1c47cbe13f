//! The LLM chain: prompt → chat model → output parser.
//!
//! The details and an example are on [`LlmChain`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::parser::{StrOutputParser, StreamParser, TypedOutputParser};
use catena_core::prompt::PromptValues;
use catena_core::{
    stream_once, Chain, ChainStream, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream,
    Error, Message, OutputParser, Prompt, ResponseFormat, Result,
};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// The prompt variable filled with the parser's format instructions when the caller does
/// not give it.
pub const FORMAT_INSTRUCTIONS_VARIABLE: &str = "format_instructions";

/// Prompt → model → parser, as one [`Chain`] from [`PromptValues`] to the parser's output.
///
/// [`LlmChain`] formats [`PromptValues`] with any [`Prompt`] (a
/// [`ChatPromptTemplate`](catena_core::ChatPromptTemplate), a
/// [`PromptTemplate`](catena_core::PromptTemplate), a few-shot template), sends the messages
/// to an `Arc<dyn ChatModel>` with the request options set on the chain, and parses the
/// answer with an [`OutputParser`]. When the prompt has a `{format_instructions}` variable
/// that the caller does not give, the parser's format instructions fill it.
/// [`Chain::stream`] streams the parsed output as the answer arrives: text deltas with
/// [`StrOutputParser`], partial objects with the JSON and typed parsers (see
/// [`OutputParser::stream_parser`]), the one parsed output at the end with other parsers.
/// [`LlmChain::stream_chunks`] returns the model's raw deltas instead (tool calls, usage,
/// finish reason included).
///
/// ```
/// use catena_core::prompt::{ChatPromptTemplate, PromptValues};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{Chain, ChatModelExt};
/// use catena_chains::LlmChain;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let prompt = ChatPromptTemplate::builder()
///     .system("You answer in one word.")
///     .user("Capital of {country}?")
///     .build()?;
/// let model = ScriptedChatModel::new().with_text(" Paris \n").boxed();
/// let chain = LlmChain::text(prompt, model).with_temperature(0.0);
/// let answer = chain.invoke(PromptValues::new().with("country", "France")).await?;
/// assert_eq!(answer, "Paris");
/// # Ok(())
/// # }
/// ```
///
/// The request options (temperature, maximum tokens, stop sequences, seed, model id,
/// response format) are kept in a base [`ChatRequest`] whose messages are replaced on
/// each call.
pub struct LlmChain<P> {
    prompt: Arc<dyn Prompt>,
    model: Arc<dyn ChatModel>,
    parser: P,
    request: ChatRequest,
}

impl<P: Clone> Clone for LlmChain<P> {
    fn clone(&self) -> Self {
        LlmChain {
            prompt: Arc::clone(&self.prompt),
            model: Arc::clone(&self.model),
            parser: self.parser.clone(),
            request: self.request.clone(),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for LlmChain<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmChain")
            .field("input_variables", &self.prompt.input_variables())
            .field("model", &self.model.model_info().model)
            .field("parser", &self.parser)
            .field("request", &self.request)
            .finish()
    }
}

impl LlmChain<StrOutputParser> {
    /// A chain whose output is the answer's text, trimmed.
    pub fn text(prompt: impl Prompt + 'static, model: Arc<dyn ChatModel>) -> Self {
        LlmChain::new(prompt, model, StrOutputParser::new())
    }

    /// Structured output: a chain whose answer is a `T`, with the provider enforcing `T`'s
    /// JSON schema ([`ResponseFormat::json_schema_for`]) and the answer parsed and checked
    /// by a [`TypedOutputParser`].
    ///
    /// ```
    /// use catena_chains::LlmChain;
    /// use catena_core::prompt::{PromptTemplate, PromptValues};
    /// use catena_core::test_utils::ScriptedChatModel;
    /// use catena_core::{Chain, ChatModelExt, ModelInfo};
    ///
    /// #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    /// struct City { name: String, population: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> catena_core::Result<()> {
    /// let prompt = PromptTemplate::new("The largest city of {country}?")?;
    /// let enforcing = ScriptedChatModel::new()
    ///     .with_model_info(ModelInfo::new("hosted", "m").with_json_schema(true))
    ///     .with_text(r#"{"name": "Tokyo", "population": 14000000}"#)
    ///     .boxed();
    /// let chain = LlmChain::structured::<City>(prompt.clone(), enforcing)?;
    /// let city = chain.invoke(PromptValues::new().with("country", "Japan")).await?;
    /// assert_eq!(city.name, "Tokyo");
    ///
    /// // A model that cannot enforce a schema is refused when the chain is built.
    /// let loose = ScriptedChatModel::new().with_model_info(ModelInfo::new("local", "tiny")).boxed();
    /// let err = LlmChain::structured::<City>(prompt, loose).unwrap_err();
    /// assert!(err.to_string().contains("TypedOutputParser"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the model's
    /// [`ModelInfo::supports_json_schema`](catena_core::ModelInfo) is `false`; the message
    /// names the alternative: [`LlmChain::new`] with a [`TypedOutputParser`], whose format
    /// instructions ask for the schema in the prompt and whose parser checks the answer.
    pub fn structured<T: DeserializeOwned + JsonSchema + 'static>(
        prompt: impl Prompt + 'static,
        model: Arc<dyn ChatModel>,
    ) -> Result<LlmChain<TypedOutputParser<T>>> {
        let info = model.model_info();
        if !info.supports_json_schema {
            return Err(Error::invalid_config(format!(
                "model `{}` ({}) cannot enforce a JSON schema (ModelInfo::supports_json_schema \
                 is false); use LlmChain::new(prompt, model, TypedOutputParser::new()) with \
                 {{format_instructions}} in the prompt, which asks for the schema in text and \
                 checks the answer",
                info.model, info.provider
            )));
        }
        Ok(LlmChain::new(prompt, model, TypedOutputParser::<T>::new())
            .with_response_format(ResponseFormat::json_schema_for::<T>()))
    }
}

impl<P: OutputParser> LlmChain<P> {
    /// A chain formatting `prompt`, asking `model` and parsing with `parser`.
    pub fn new(prompt: impl Prompt + 'static, model: Arc<dyn ChatModel>, parser: P) -> Self {
        LlmChain::from_shared(Arc::new(prompt), model, parser)
    }

    /// As [`new`](LlmChain::new), with a prompt that is already shared.
    pub fn from_shared(prompt: Arc<dyn Prompt>, model: Arc<dyn ChatModel>, parser: P) -> Self {
        LlmChain {
            prompt,
            model,
            parser,
            request: ChatRequest::default(),
        }
    }

    /// Replaces all request options with those of `request` (its messages are ignored).
    /// Default: everything left to the provider.
    #[must_use]
    pub fn with_request(mut self, request: ChatRequest) -> Self {
        self.request = request;
        self.request.messages.clear();
        self
    }

    /// Sets the sampling temperature. Default: the provider's.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.request.temperature = Some(temperature);
        self
    }

    /// Sets the maximum answer length in tokens. Default: the provider's.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.request.max_tokens = Some(max_tokens);
        self
    }

    /// Adds stop sequences. Default: none.
    #[must_use]
    pub fn with_stop<S: Into<String>>(mut self, stop: impl IntoIterator<Item = S>) -> Self {
        self.request.stop.extend(stop.into_iter().map(Into::into));
        self
    }

    /// Sets the sampling seed. Default: none.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.request.seed = Some(seed);
        self
    }

    /// Overrides the model id for every call. Default: the model client's.
    #[must_use]
    pub fn with_model_id(mut self, model: impl Into<String>) -> Self {
        self.request.model = Some(model.into());
        self
    }

    /// Sets the response format (for example a JSON schema). Default: free text.
    #[must_use]
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.request.response_format = Some(format);
        self
    }

    /// The variables a caller must give: the prompt's, less `format_instructions` when the
    /// parser provides it.
    pub fn input_variables(&self) -> Vec<String> {
        let filled = self.parser.format_instructions().is_some();
        self.prompt
            .input_variables()
            .into_iter()
            .filter(|v| !(filled && v == FORMAT_INSTRUCTIONS_VARIABLE))
            .collect()
    }

    /// The prompt.
    pub fn prompt(&self) -> &Arc<dyn Prompt> {
        &self.prompt
    }

    /// The model.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// The parser.
    pub fn parser(&self) -> &P {
        &self.parser
    }

    /// The messages the prompt formats `values` into (format instructions filled in).
    ///
    /// # Errors
    /// [`Error::Prompt`](catena_core::Error::Prompt) when `values` do not fit the prompt.
    pub fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>> {
        let wants_instructions = !values.contains(FORMAT_INSTRUCTIONS_VARIABLE)
            && self
                .prompt
                .input_variables()
                .iter()
                .any(|v| v == FORMAT_INSTRUCTIONS_VARIABLE);
        let messages = match self.parser.format_instructions() {
            Some(instructions) if wants_instructions => {
                let values = values
                    .clone()
                    .with(FORMAT_INSTRUCTIONS_VARIABLE, instructions);
                self.prompt.format_messages(&values)?
            }
            _ => self.prompt.format_messages(values)?,
        };
        Ok(messages)
    }

    /// The request that [`invoke`](Chain::invoke) sends for `values`.
    ///
    /// # Errors
    /// As [`format_messages`](LlmChain::format_messages).
    pub fn request(&self, values: &PromptValues) -> Result<ChatRequest> {
        let mut request = self.request.clone();
        request.messages = self.format_messages(values)?;
        Ok(request)
    }

    /// The model's complete response, unparsed.
    ///
    /// # Errors
    /// Prompt errors, and the model's errors as they are.
    pub async fn generate(&self, values: &PromptValues) -> Result<ChatResponse> {
        let request = self.request(values)?;
        self.model.generate(request).await
    }

    /// The model's answer as a stream of deltas (text, tool calls, usage, finish), unparsed.
    /// Collect it with [`StreamAccumulator`](catena_core::StreamAccumulator) or
    /// [`collect_stream`](catena_core::collect_stream) and parse with
    /// [`parser`](LlmChain::parser) when the whole answer is needed.
    ///
    /// # Errors
    /// Prompt errors, and the model's errors before the first chunk.
    pub async fn stream_chunks(&self, values: &PromptValues) -> Result<ChatStream> {
        let request = self.request(values)?;
        self.model.stream(request).await
    }
}

/// The outputs `parser` makes of a model's streamed answer: its text deltas go through the
/// parser as they arrive; other chunks (tool calls, usage, finish) are skipped. An error
/// chunk ends the stream with that error.
pub fn parse_chat_stream<O: Send + 'static>(
    chunks: ChatStream,
    parser: Box<dyn StreamParser<O>>,
) -> ChainStream<O> {
    struct State<O> {
        chunks: ChatStream,
        parser: Box<dyn StreamParser<O>>,
        done: bool,
    }
    let state = State {
        chunks,
        parser,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.chunks.next().await {
                Some(Ok(ChatChunk::TextDelta(delta))) => {
                    if let Some(out) = st.parser.push(&delta) {
                        return Some((out.map_err(Error::from), st));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    return st.parser.finish().map(|out| (out.map_err(Error::from), st));
                }
            }
        }
    }))
}

#[async_trait]
impl<P> Chain<PromptValues, P::Output> for LlmChain<P>
where
    P: OutputParser,
    P::Output: Send + 'static,
{
    async fn invoke(&self, input: PromptValues) -> Result<P::Output> {
        let response = self.generate(&input).await?;
        Ok(self.parser.parse_message(&response.message)?)
    }

    /// The parsed output as the answer streams: what an item is depends on the parser (see
    /// [`OutputParser::stream_parser`]); a parser that cannot stream gives one item at the
    /// end.
    async fn stream(&self, input: PromptValues) -> Result<ChainStream<P::Output>> {
        let request = self.request(&input)?;
        match self.parser.stream_parser() {
            Some(parser) => Ok(parse_chat_stream(self.model.stream(request).await?, parser)),
            None => {
                let response = self.model.generate(request).await?;
                Ok(stream_once(
                    self.parser
                        .parse_message(&response.message)
                        .map_err(Error::from),
                ))
            }
        }
    }
}

/// Sends `messages` with the options of `base`, returning the answer's text.
pub(crate) async fn ask(
    model: &dyn ChatModel,
    base: &ChatRequest,
    messages: Vec<Message>,
) -> Result<String> {
    let mut request = base.clone();
    request.messages = messages;
    Ok(model.generate(request).await?.text())
}

/// Checks that `prompt` uses exactly the variables `expected` (order ignored).
pub(crate) fn check_variables(prompt: &dyn Prompt, what: &str, expected: &[&str]) -> Result<()> {
    let mut found = prompt.input_variables();
    found.sort();
    let mut wanted: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    wanted.sort();
    if found == wanted {
        Ok(())
    } else {
        Err(catena_core::Error::invalid_config(format!(
            "the {what} prompt must use the variables {wanted:?}, found {found:?}"
        )))
    }
}
