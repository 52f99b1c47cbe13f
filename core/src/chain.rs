//! Chains: typed, composable async steps.
//!
//! Anything with `invoke(I) -> O` is a [`Chain`]. [`ChainExt::pipe`] feeds one chain's output
//! into the next; [`chain_fn`] lifts an async closure into a chain; [`ChainExt::boxed`] erases
//! the type so chains can be stored as `Arc<dyn Chain<I, O>>`.
//!
//! Every chain also **streams** ([`Chain::stream`]): by default the whole output as one item;
//! chains that produce their output piece by piece (a model's text through a parser, a RAG
//! answer) override it and yield chunks as they come — what a chunk is (a text delta, a
//! partial object, an event) is documented on each chain. A [`Pipe`] runs its first step to
//! completion and streams its last, so `retrieve.pipe(answer)` streams the answer.
//!
//! ```
//! use catena_core::{chain_fn, Chain, ChainExt};
//!
//! # futures::executor::block_on(async {
//! let shout = chain_fn(|s: String| async move { Ok(s.to_uppercase()) });
//! let count = chain_fn(|s: String| async move { Ok(s.len()) });
//! let both = shout.pipe(count).boxed();
//! assert_eq!(both.invoke("hello".to_string()).await.unwrap(), 5);
//!
//! // The default stream: the whole output as one item.
//! use futures::StreamExt;
//! let items: Vec<_> = both.stream("hey".to_string()).await.unwrap().collect().await;
//! assert_eq!(items.into_iter().map(Result::unwrap).collect::<Vec<_>>(), vec![3]);
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

use crate::error::Result;

/// A chain's streamed output: items of `O` as they are ready, then the end (an `Err` item
/// ends it early).
pub type ChainStream<O> = Pin<Box<dyn Stream<Item = Result<O>> + Send + 'static>>;

/// A stream of exactly one item, `item`.
pub fn stream_once<O: Send + 'static>(item: Result<O>) -> ChainStream<O> {
    Box::pin(futures::stream::once(async move { item }))
}

/// One async step from `I` to `O`.
#[async_trait]
pub trait Chain<I, O>: Send + Sync
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Runs the step.
    ///
    /// # Errors
    /// Whatever the step reports.
    async fn invoke(&self, input: I) -> Result<O>;

    /// Runs the step on each input concurrently, results in input order; the first error
    /// is returned.
    ///
    /// # Errors
    /// The first failing input's error.
    async fn batch(&self, inputs: Vec<I>) -> Result<Vec<O>> {
        futures::future::try_join_all(inputs.into_iter().map(|i| self.invoke(i))).await
    }

    /// Runs the step and streams its output.
    ///
    /// Default: [`invoke`](Chain::invoke), then the output as one item. Chains that produce
    /// output piece by piece override it; each documents what its items are.
    ///
    /// # Errors
    /// Failures before the first item; later failures arrive as an `Err` item.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        let output = self.invoke(input).await?;
        Ok(stream_once(Ok(output)))
    }
}

#[async_trait]
impl<I, O, T> Chain<I, O> for Arc<T>
where
    I: Send + 'static,
    O: Send + 'static,
    T: Chain<I, O> + ?Sized,
{
    async fn invoke(&self, input: I) -> Result<O> {
        (**self).invoke(input).await
    }

    async fn batch(&self, inputs: Vec<I>) -> Result<Vec<O>> {
        (**self).batch(inputs).await
    }

    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        (**self).stream(input).await
    }
}

#[async_trait]
impl<I, O, T> Chain<I, O> for Box<T>
where
    I: Send + 'static,
    O: Send + 'static,
    T: Chain<I, O> + ?Sized,
{
    async fn invoke(&self, input: I) -> Result<O> {
        (**self).invoke(input).await
    }

    async fn batch(&self, inputs: Vec<I>) -> Result<Vec<O>> {
        (**self).batch(inputs).await
    }

    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        (**self).stream(input).await
    }
}

/// Combinators for every [`Chain`].
pub trait ChainExt<I, O>: Chain<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Feeds this chain's output into `next`.
    fn pipe<P, N>(self, next: N) -> Pipe<Self, N, O>
    where
        Self: Sized,
        N: Chain<O, P>,
        P: Send + 'static,
    {
        Pipe {
            first: self,
            second: next,
            _mid: PhantomData,
        }
    }

    /// Erases the chain's type.
    fn boxed(self) -> Arc<dyn Chain<I, O>>
    where
        Self: Sized + 'static,
    {
        Arc::new(self)
    }
}

impl<I, O, T> ChainExt<I, O> for T
where
    I: Send + 'static,
    O: Send + 'static,
    T: Chain<I, O> + ?Sized,
{
}

/// Two chains in sequence; see [`ChainExt::pipe`].
pub struct Pipe<A, B, M> {
    first: A,
    second: B,
    _mid: PhantomData<fn() -> M>,
}

impl<A, B, M> fmt::Debug for Pipe<A, B, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe").finish_non_exhaustive()
    }
}

#[async_trait]
impl<I, M, O, A, B> Chain<I, O> for Pipe<A, B, M>
where
    I: Send + 'static,
    M: Send + 'static,
    O: Send + 'static,
    A: Chain<I, M>,
    B: Chain<M, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        let mid = self.first.invoke(input).await?;
        self.second.invoke(mid).await
    }

    /// Runs the first step to completion, then streams the second.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        let mid = self.first.invoke(input).await?;
        self.second.stream(mid).await
    }
}

/// A chain made from an async closure; see [`chain_fn`].
pub struct FnChain<F, I> {
    f: F,
    _input: PhantomData<fn(I)>,
}

impl<F, I> fmt::Debug for FnChain<F, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnChain").finish_non_exhaustive()
    }
}

/// Lifts `async |input| -> Result<O>` into a [`Chain`].
pub fn chain_fn<F, Fut, I, O>(f: F) -> FnChain<F, I>
where
    F: Fn(I) -> Fut + Send + Sync,
    Fut: Future<Output = Result<O>> + Send,
{
    FnChain {
        f,
        _input: PhantomData,
    }
}

#[async_trait]
impl<F, Fut, I, O> Chain<I, O> for FnChain<F, I>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync,
    Fut: Future<Output = Result<O>> + Send,
{
    async fn invoke(&self, input: I) -> Result<O> {
        (self.f)(input).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn pipe_stops_at_first_error_and_batch_keeps_order() {
        futures::executor::block_on(async {
            let fail_on_odd = chain_fn(|n: u32| async move {
                if n % 2 == 1 {
                    Err(Error::invalid_input(format!("odd {n}")))
                } else {
                    Ok(n)
                }
            });
            let double = chain_fn(|n: u32| async move { Ok(n * 2) });
            let c = fail_on_odd.pipe(double).boxed();
            assert_eq!(c.invoke(4).await.unwrap(), 8);
            assert!(c.invoke(3).await.unwrap_err().to_string().contains("odd 3"));
            assert_eq!(c.batch(vec![2, 4, 6]).await.unwrap(), vec![4, 8, 12]);
            assert!(c.batch(vec![2, 5]).await.is_err());
        });
    }
}
