//! The HTTP client behind the streamable HTTP transport.
//!
//! rmcp's transport speaks reqwest. Its default client wants a process-wide rustls crypto
//! provider; this one carries the crate's own TLS configuration (`ring`, the platform's
//! certificate verifier), so nothing global is touched.

use std::time::Duration;

use reqwest::redirect::{Attempt, Policy};
use reqwest::StatusCode;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// A reqwest 0.13 client for one MCP server.
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect_timeout)
        // rmcp's own default: a reused connection whose previous body was not read to the
        // end stalls on delayed ACKs.
        .pool_max_idle_per_host(0)
        .redirect(Policy::custom(same_origin_redirect))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {e}"))
}

/// Follows only same-origin 307 and 308 redirects, which keep the method and the JSON-RPC
/// body; a cross-origin hop would hand the session id and custom headers to another host.
fn same_origin_redirect(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let keeps_body = matches!(
        attempt.status(),
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
    );
    let same_origin = attempt
        .previous()
        .first()
        .is_some_and(|first| first.origin() == attempt.url().origin());
    if !keeps_body || !same_origin {
        attempt.stop()
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
    } else {
        attempt.follow()
    }
}
