//! The process's stop signals as one future, for [`Gateway::serve`](crate::Gateway::serve).
//!
//! ```no_run
//! # async fn run(gateway: example_gateway::Gateway, listener: tokio::net::TcpListener)
//! # -> Result<(), example_gateway::GatewayError> {
//! gateway.serve(listener, example_gateway::shutdown_signal()).await
//! # }
//! ```

/// Completes on Ctrl-C or, on Unix, SIGTERM (what a container runtime sends to stop).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
