//! Runnable combinators, as in LangChain's expression language: fan-out in parallel,
//! passthrough and assign, branch by predicate, and per-chain configuration (run name, tags,
//! metadata) recorded in `tracing` spans.
//!
//! | LangChain | Catena |
//! | --- | --- |
//! | `RunnableParallel({"a": x, "b": y})` | [`parallel2`]`(x, y)` (a tuple) or [`ParallelMap`] (a map) |
//! | `RunnablePassthrough()` | [`passthrough`] |
//! | `RunnablePassthrough.assign(k=x)` | [`Assign`] |
//! | `RunnableBranch((cond, x), default)` | [`Branch`] |
//! | `.with_config(run_name=…, tags=…, metadata=…)` | [`RunnableExt::with_config`] |
//! | `.with_retry()`, `.with_fallbacks([…])` | [`ComposeExt`](crate::ComposeExt), [`FallbackList`](crate::FallbackList) |
//!
//! Every combinator streams ([`Chain::stream`]): a branch streams the chain it picked, a
//! configured chain streams its inner chain inside its span; the others yield their one
//! output.
//!
//! ```
//! use catena_core::{chain_fn, Chain, ChainExt};
//! use catena_chains::runnable::{parallel2, passthrough, Assign, Branch, RunConfig, RunnableExt};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> catena_core::Result<()> {
//! let upper = chain_fn(|s: String| async move { Ok(s.to_uppercase()) });
//! let len = chain_fn(|s: String| async move { Ok(s.len()) });
//! let both = parallel2(upper, len);
//! assert_eq!(both.invoke("rust".into()).await?, ("RUST".to_string(), 4));
//!
//! let same = passthrough::<u32>();
//! assert_eq!(same.invoke(7).await?, 7);
//!
//! let with_words = Assign::new().field(
//!     "words",
//!     chain_fn(|v: catena_chains::Values| async move {
//!         Ok(v["text"].as_str().unwrap_or("").split_whitespace().count())
//!     }),
//! );
//! let mut input = catena_chains::Values::new();
//! input.insert("text".into(), json!("one two three"));
//! let out = with_words.invoke(input).await?;
//! assert_eq!(out["words"], json!(3));
//!
//! let route = Branch::new(chain_fn(|n: i64| async move { Ok(format!("{n} is odd")) }))
//!     .when(|n: &i64| n % 2 == 0, chain_fn(|n: i64| async move { Ok(format!("{n} is even")) }));
//! assert_eq!(route.invoke(4).await?, "4 is even");
//!
//! let named = route.with_config(RunConfig::new("parity").with_tag("demo"));
//! assert_eq!(named.invoke(3).await?, "3 is odd");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use catena_core::{Chain, ChainStream, Error, Result};
use futures::Stream;
use serde::Serialize;
use tracing::Span;

use crate::compose::SharedChain;
use crate::sequential::Values;

/// Runs two chains on (clones of) the same input at once; the output is both results. See
/// [`parallel2`].
#[derive(Debug, Clone)]
pub struct Parallel2<A, B> {
    a: A,
    b: B,
}

/// Two chains on the same input, concurrently: `(a(input), b(input))`. The first error wins
/// and the other call is dropped.
pub fn parallel2<A, B>(a: A, b: B) -> Parallel2<A, B> {
    Parallel2 { a, b }
}

#[async_trait]
impl<I, OA, OB, A, B> Chain<I, (OA, OB)> for Parallel2<A, B>
where
    I: Clone + Send + Sync + 'static,
    OA: Send + 'static,
    OB: Send + 'static,
    A: Chain<I, OA>,
    B: Chain<I, OB>,
{
    async fn invoke(&self, input: I) -> Result<(OA, OB)> {
        futures::future::try_join(self.a.invoke(input.clone()), self.b.invoke(input)).await
    }
}

/// Runs three chains on the same input at once. See [`parallel3`].
#[derive(Debug, Clone)]
pub struct Parallel3<A, B, C> {
    a: A,
    b: B,
    c: C,
}

/// Three chains on the same input, concurrently: `(a(input), b(input), c(input))`.
pub fn parallel3<A, B, C>(a: A, b: B, c: C) -> Parallel3<A, B, C> {
    Parallel3 { a, b, c }
}

#[async_trait]
impl<I, OA, OB, OC, A, B, C> Chain<I, (OA, OB, OC)> for Parallel3<A, B, C>
where
    I: Clone + Send + Sync + 'static,
    OA: Send + 'static,
    OB: Send + 'static,
    OC: Send + 'static,
    A: Chain<I, OA>,
    B: Chain<I, OB>,
    C: Chain<I, OC>,
{
    async fn invoke(&self, input: I) -> Result<(OA, OB, OC)> {
        futures::future::try_join3(
            self.a.invoke(input.clone()),
            self.b.invoke(input.clone()),
            self.c.invoke(input),
        )
        .await
    }
}

/// Named chains with one output type, run on the same input at once; the output maps each
/// name to its chain's result (LangChain's `RunnableParallel` with a dict).
///
/// ```
/// use catena_core::{chain_fn, Chain, ChainExt};
/// use catena_chains::runnable::ParallelMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let fan = ParallelMap::new()
///     .branch("double", chain_fn(|n: i32| async move { Ok(n * 2) }))
///     .branch("square", chain_fn(|n: i32| async move { Ok(n * n) }));
/// let out = fan.invoke(3).await?;
/// assert_eq!((out["double"], out["square"]), (6, 9));
/// # Ok(())
/// # }
/// ```
pub struct ParallelMap<I, O> {
    branches: Vec<(String, SharedChain<I, O>)>,
}

impl<I, O> fmt::Debug for ParallelMap<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.branches.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ParallelMap")
            .field("branches", &names)
            .finish()
    }
}

impl<I, O> Default for ParallelMap<I, O> {
    fn default() -> Self {
        ParallelMap {
            branches: Vec::new(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> ParallelMap<I, O> {
    /// No branches yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a branch; a later branch with the same name replaces the earlier one.
    #[must_use]
    pub fn branch(mut self, name: impl Into<String>, chain: impl Chain<I, O> + 'static) -> Self {
        let name = name.into();
        self.branches.retain(|(n, _)| *n != name);
        self.branches.push((name, Arc::new(chain)));
        self
    }
}

#[async_trait]
impl<I, O> Chain<I, BTreeMap<String, O>> for ParallelMap<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    async fn invoke(&self, input: I) -> Result<BTreeMap<String, O>> {
        let runs = self.branches.iter().map(|(name, chain)| {
            let input = input.clone();
            async move { Ok::<_, Error>((name.clone(), chain.invoke(input).await?)) }
        });
        Ok(futures::future::try_join_all(runs)
            .await?
            .into_iter()
            .collect())
    }
}

/// Passes its input through unchanged; see [`passthrough`].
pub struct Passthrough<I>(PhantomData<fn(I) -> I>);

impl<I> fmt::Debug for Passthrough<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passthrough")
    }
}

impl<I> Clone for Passthrough<I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I> Copy for Passthrough<I> {}

/// A chain that returns its input (LangChain's `RunnablePassthrough`): a branch of a
/// parallel step that keeps the original input beside what other branches compute.
pub fn passthrough<I>() -> Passthrough<I> {
    Passthrough(PhantomData)
}

#[async_trait]
impl<I: Send + 'static> Chain<I, I> for Passthrough<I> {
    async fn invoke(&self, input: I) -> Result<I> {
        Ok(input)
    }
}

/// Adds fields to a [`Values`] map, each computed by a chain from the whole input, all at
/// once (LangChain's `RunnablePassthrough.assign`). The input's other fields pass through;
/// an assigned field replaces an input field of the same name.
pub struct Assign {
    fields: Vec<(String, SharedChain<Values, serde_json::Value>)>,
}

impl fmt::Debug for Assign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Assign").field("fields", &names).finish()
    }
}

impl Default for Assign {
    fn default() -> Self {
        Self::new()
    }
}

impl Assign {
    /// No fields yet.
    pub fn new() -> Self {
        Assign { fields: Vec::new() }
    }

    /// Assigns `name` the output of `chain` (serialised to JSON).
    #[must_use]
    pub fn field<O, C>(mut self, name: impl Into<String>, chain: C) -> Self
    where
        O: Serialize + Send + 'static,
        C: Chain<Values, O> + 'static,
    {
        let name = name.into();
        self.fields.retain(|(n, _)| *n != name);
        self.fields
            .push((name, Arc::new(ToJson(chain, PhantomData))));
        self
    }
}

/// A chain whose output is serialised to JSON.
struct ToJson<C, O>(C, PhantomData<fn() -> O>);

#[async_trait]
impl<C, O> Chain<Values, serde_json::Value> for ToJson<C, O>
where
    O: Serialize + Send + 'static,
    C: Chain<Values, O>,
{
    async fn invoke(&self, input: Values) -> Result<serde_json::Value> {
        let out = self.0.invoke(input).await?;
        serde_json::to_value(out)
            .map_err(|e| Error::other(format!("an assigned value is not JSON: {e}")))
    }
}

#[async_trait]
impl Chain<Values, Values> for Assign {
    async fn invoke(&self, input: Values) -> Result<Values> {
        let runs = self.fields.iter().map(|(name, chain)| {
            let input = input.clone();
            async move { Ok::<_, Error>((name.clone(), chain.invoke(input).await?)) }
        });
        let assigned = futures::future::try_join_all(runs).await?;
        let mut out = input;
        out.extend(assigned);
        Ok(out)
    }
}

type Predicate<I> = Box<dyn Fn(&I) -> bool + Send + Sync>;

/// Routes each input to the first chain whose predicate holds, else to the default
/// (LangChain's `RunnableBranch`). It streams the chain it picked.
pub struct Branch<I, O> {
    routes: Vec<(Predicate<I>, SharedChain<I, O>)>,
    default: SharedChain<I, O>,
}

impl<I, O> fmt::Debug for Branch<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Branch")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Branch<I, O> {
    /// A branch that sends everything to `default` until routes are added.
    pub fn new(default: impl Chain<I, O> + 'static) -> Self {
        Branch {
            routes: Vec::new(),
            default: Arc::new(default),
        }
    }

    /// Adds a route, tried after the ones added before it.
    #[must_use]
    pub fn when(
        mut self,
        predicate: impl Fn(&I) -> bool + Send + Sync + 'static,
        chain: impl Chain<I, O> + 'static,
    ) -> Self {
        self.routes.push((Box::new(predicate), Arc::new(chain)));
        self
    }

    fn pick(&self, input: &I) -> &SharedChain<I, O> {
        self.routes
            .iter()
            .find(|(p, _)| p(input))
            .map_or(&self.default, |(_, c)| c)
    }
}

#[async_trait]
impl<I: Send + 'static, O: Send + 'static> Chain<I, O> for Branch<I, O> {
    async fn invoke(&self, input: I) -> Result<O> {
        self.pick(&input).invoke(input).await
    }

    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        self.pick(&input).stream(input).await
    }
}

/// How a configured chain shows up in traces: a run name, tags and metadata (LangChain's
/// `RunnableConfig`); see [`RunnableExt::with_config`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunConfig {
    /// The span's `run_name` field.
    pub run_name: String,
    /// The span's `tags` field (comma-separated).
    pub tags: Vec<String>,
    /// The span's `metadata` field (JSON).
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// A configuration named `run_name`.
    pub fn new(run_name: impl Into<String>) -> Self {
        RunConfig {
            run_name: run_name.into(),
            ..Self::default()
        }
    }

    /// Adds a tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    fn span(&self, mode: &'static str) -> Span {
        let metadata = serde_json::to_string(&self.metadata).unwrap_or_default();
        tracing::info_span!(
            "chain.run",
            run_name = %self.run_name,
            tags = %self.tags.join(","),
            metadata = %metadata,
            mode,
            outcome = tracing::field::Empty,
            items = tracing::field::Empty,
            elapsed_us = tracing::field::Empty,
        )
    }
}

/// A chain run inside a `chain.run` span carrying its [`RunConfig`]; the span records how it
/// ended (`outcome` = `ok` or `error`, an `error` event with the message, the elapsed time,
/// and for a stream the number of items). See [`RunnableExt::with_config`].
#[derive(Debug, Clone)]
pub struct Configured<C> {
    inner: C,
    config: Arc<RunConfig>,
}

impl<C> Configured<C> {
    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }
}

fn record_end(span: &Span, started: Instant, error: Option<&Error>) {
    span.record("elapsed_us", started.elapsed().as_micros() as u64);
    match error {
        None => {
            span.record("outcome", "ok");
        }
        Some(e) => {
            span.record("outcome", "error");
            span.in_scope(|| tracing::warn!(error = %e, "chain run failed"));
        }
    }
}

#[async_trait]
impl<I, O, C> Chain<I, O> for Configured<C>
where
    I: Send + 'static,
    O: Send + 'static,
    C: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        let span = self.config.span("invoke");
        let started = Instant::now();
        let out = tracing::Instrument::instrument(self.inner.invoke(input), span.clone()).await;
        record_end(&span, started, out.as_ref().err());
        out
    }

    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        let span = self.config.span("stream");
        let started = Instant::now();
        match tracing::Instrument::instrument(self.inner.stream(input), span.clone()).await {
            Ok(inner) => Ok(Box::pin(InSpan {
                inner,
                span,
                started,
                items: 0,
                failed: false,
            })),
            Err(e) => {
                record_end(&span, started, Some(&e));
                Err(e)
            }
        }
    }
}

/// A stream polled inside a span, which records the outcome when the stream ends.
struct InSpan<O> {
    inner: ChainStream<O>,
    span: Span,
    started: Instant,
    items: u64,
    failed: bool,
}

impl<O> Stream for InSpan<O> {
    type Item = Result<O>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = {
            let _entered = this.span.enter();
            this.inner.as_mut().poll_next(cx)
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) => this.items += 1,
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                record_end(&this.span, this.started, Some(e));
            }
            Poll::Ready(None) => {
                this.span.record("items", this.items);
                if !this.failed {
                    record_end(&this.span, this.started, None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

/// [`with_config`](RunnableExt::with_config) for every chain.
pub trait RunnableExt: Sized {
    /// Runs the chain inside a `chain.run` span with `config`'s name, tags and metadata.
    fn with_config(self, config: RunConfig) -> Configured<Self> {
        Configured {
            inner: self,
            config: Arc::new(config),
        }
    }
}

impl<T> RunnableExt for T {}
