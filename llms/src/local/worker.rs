//! Dedicated inference threads fed by a bounded queue.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use catena_core::{Error, ProviderError, ProviderErrorKind};

use super::PROVIDER;

/// A job: runs on a worker thread with mutable access to that thread's state.
pub(crate) type Job<S> = Box<dyn FnOnce(&mut S) + Send + 'static>;

/// A fixed set of OS threads, each owning one `S` (a model with its own caches), taking jobs from
/// one bounded queue. Dropping the pool closes the queue: threads finish their current job and
/// exit.
pub(crate) struct WorkerPool<S> {
    tx: SyncSender<Job<S>>,
    capacity: usize,
    workers: usize,
}

impl<S: Send + 'static> WorkerPool<S> {
    /// Starts one thread named `name-N` per state in `states`.
    pub(crate) fn start(name: &str, states: Vec<S>, capacity: usize) -> Result<Self, Error> {
        let workers = states.len();
        if workers == 0 {
            return Err(Error::invalid_config(
                "a local model needs at least one worker",
            ));
        }
        let capacity = capacity.max(1);
        let (tx, rx) = sync_channel::<Job<S>>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for (i, mut state) in states.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker_loop(&rx, &mut state))
                .map_err(|e| Error::io("cannot start a local inference thread", e))?;
        }
        Ok(WorkerPool {
            tx,
            capacity,
            workers,
        })
    }

    /// Queues a job, or fails at once with a retryable "busy" error when the queue is full.
    pub(crate) fn submit(&self, job: Job<S>) -> Result<(), Error> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ProviderError::new(
                ProviderErrorKind::Server,
                format!(
                    "local model busy: {} requests already queued for {} worker(s)",
                    self.capacity, self.workers
                ),
            )
            .with_provider(PROVIDER)
            .with_retry_after(std::time::Duration::from_secs(1))
            .into()),
            Err(TrySendError::Disconnected(_)) => Err(ProviderError::new(
                ProviderErrorKind::Server,
                "local model workers have stopped",
            )
            .with_provider(PROVIDER)
            .into()),
        }
    }

    /// The number of worker threads.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// The queue capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

fn worker_loop<S>(rx: &Mutex<Receiver<Job<S>>>, state: &mut S) {
    loop {
        // Hold the lock only while taking a job, so other workers can take the next one.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                // A panicking job must not take the worker down with it (candle asserts on
                // shapes); its result channel is dropped, which the caller sees as an error.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut *state)));
                if outcome.is_err() {
                    tracing::error!("a local inference job panicked; the worker continues");
                }
            }
            Err(_) => return,
        }
    }
}
