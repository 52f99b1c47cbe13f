//! The HTTP server under [`Gateway::serve`](crate::Gateway::serve): hyper's HTTP/1.1 with a
//! timer, so a client cannot hold a connection without sending a request — the headers must
//! arrive within the header-read timeout, from the moment the connection is accepted and
//! again while a kept-alive connection waits for its next request — a cap on open
//! connections (past it, connections wait in the kernel's backlog instead of costing memory
//! and file descriptors), the peer address for the handlers ([`ConnectInfo`]), and a graceful
//! shutdown that stops accepting, lets in-flight requests finish and waits for every
//! connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The connection-level limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    /// How long a client may take to send a request's headers (from the connection's start,
    /// or from the end of its previous response).
    pub(crate) header_read_timeout: Duration,
    /// The most connections open at once.
    pub(crate) max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every
/// connection to finish its in-flight request and close, and waits for all of them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            let _open = permit;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = open.acquire_many(all).await;
    Ok(())
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The peer of a request served by [`serve`]; `None` for a router served some other way.
pub(crate) fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
