//! The TLS configuration of every HTTP client this crate builds: rustls on the `ring`
//! provider with the platform's certificate verifier, carried by the client itself, so no
//! process-wide crypto provider is installed or needed.

use std::sync::Arc;

/// A rustls client configuration on `ring` with the platform verifier.
pub(crate) fn client_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("could not load the platform's certificate verifier: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("could not configure TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}
