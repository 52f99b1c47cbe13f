//! [`AsyncDocumentLoader`]: any document loader, run without blocking the async runtime.

use catena_core::loader::DocumentLoader;
use catena_core::{Document, Error, Result};

/// Loading without blocking the async runtime: the loader runs on Tokio's blocking thread
/// pool ([`tokio::task::spawn_blocking`]), so a large directory does not stall other tasks.
/// Implemented for every loader that is `Clone` (all the built-in ones, and any
/// `Arc<dyn DocumentLoader>`). LangChain's `aload`.
///
/// ```no_run
/// use catena_chains::AsyncDocumentLoader;
/// use catena_core::loader::DirectoryLoader;
///
/// # #[tokio::main]
/// # async fn main() -> catena_core::Result<()> {
/// let docs = DirectoryLoader::builder("docs").include("**/*.md").build()?.load_async().await?;
/// println!("{} documents", docs.len());
/// # Ok(())
/// # }
/// ```
pub trait AsyncDocumentLoader: DocumentLoader + Clone + 'static {
    /// Loads all documents on the blocking thread pool.
    ///
    /// # Errors
    /// As [`DocumentLoader::load`]; [`Error::Other`] if the loading thread panicked
    /// or the runtime is shutting down.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    fn load_async(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<Document>>> + Send + 'static {
        let loader = self.clone();
        async move {
            tokio::task::spawn_blocking(move || loader.load())
                .await
                .map_err(|e| Error::other(format!("the loading thread failed: {e}")))?
        }
    }
}

impl<L: DocumentLoader + Clone + 'static> AsyncDocumentLoader for L {}
