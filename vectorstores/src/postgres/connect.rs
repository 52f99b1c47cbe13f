//! The one connection configuration of the PostgreSQL types: a connection string or a shared
//! pool, the pool size and the connect timeout; the pool built from it, with TLS as the
//! string's `sslmode` and `sslrootcert` ask (see [`TlsPlan`]); and the redaction of
//! connection strings wherever they are shown.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DATABASE_URL_ENV;

/// The default of [`ConnectConfig::connect_timeout`].
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where connections come from.
pub(crate) enum Connection {
    /// A connection string; the type opens its own pool.
    Url(String),
    /// A pool shared with the rest of the program.
    Pool(Pool),
}

/// The connection settings every PostgreSQL builder holds; its setters come from
/// [`connection_setters!`](connection_setters).
pub(crate) struct ConnectConfig {
    /// The connection string or shared pool; `None` reads [`DATABASE_URL_ENV`].
    pub(crate) connection: Option<Connection>,
    /// The size of the pool opened for a connection string.
    pub(crate) max_connections: usize,
    /// How long to wait for a new connection, and for a free pooled one.
    pub(crate) connect_timeout: Duration,
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connection = match &self.connection {
            Some(Connection::Url(url)) => redact_url(url),
            Some(Connection::Pool(_)) => "<shared pool>".to_owned(),
            None => format!("<from ${DATABASE_URL_ENV}>"),
        };
        f.debug_struct("ConnectConfig")
            .field("connection", &connection)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ConnectConfig {
    /// No connection yet, a pool of `max_connections`, a 10 s connect timeout.
    pub(crate) fn new(max_connections: usize) -> Self {
        ConnectConfig {
            connection: None,
            max_connections,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Checks the options without connecting.
    pub(crate) fn check(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::invalid_config("max_connections must be at least 1"));
        }
        Ok(())
    }

    /// The pool (the shared one, or a new one for the connection string or
    /// `$DATABASE_URL`) and a description of the endpoint that never holds the password.
    /// Opens no connection.
    pub(crate) fn build_pool(&self) -> Result<(Pool, String)> {
        self.check()?;
        let url = match &self.connection {
            Some(Connection::Pool(pool)) => return Ok((pool.clone(), "<shared pool>".to_owned())),
            Some(Connection::Url(url)) => url.clone(),
            None => match std::env::var(DATABASE_URL_ENV) {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    return Err(Error::invalid_config(format!(
                        "no database: set {DATABASE_URL_ENV} or call url()/pool()"
                    )))
                }
            },
        };
        // tokio-postgres knows neither `verify-ca`/`verify-full` nor `sslrootcert`: both are
        // taken out of the string and applied here.
        let (rest, params) = split_tls_params(&url);
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| Error::invalid_config(format!("invalid connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let plan = TlsPlan::decide(&params, all_hosts_local(&config))?;
        config.ssl_mode(plan.mode);
        let connector = MakeRustlsConnect::new(plan.client_config()?);
        let endpoint = describe(&config);
        tracing::debug!(endpoint = %endpoint, tls = ?plan, "PostgreSQL pool");
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.connect_timeout))
            .create_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| Error::invalid_config(format!("cannot build the pool: {e}")))?;
        Ok((pool, endpoint))
    }
}

/// The connection setters of a PostgreSQL builder whose [`ConnectConfig`] is its field
/// `connect`: `url`, `pool`, `max_connections` and `connect_timeout`, with their defaults
/// in the docs.
macro_rules! connection_setters {
    (max_connections = $max:literal, url_default = $url_default:literal) => {
        #[doc = concat!(
            "Connects with a connection string, either a URL ",
            "(`postgres://user:password@127.0.0.1:5432/db`) or `key=value` pairs, in a pool of ",
            "its own of up to [`max_connections`](Self::max_connections). Default: ",
            $url_default, ".\n\n",
            "TLS (rustls) follows the string's `sslmode`, as in libpq:\n\n",
            "- `disable`: plaintext.\n",
            "- `prefer` (the default): TLS if the server offers it, plaintext otherwise, but ",
            "**only for local hosts** (`localhost`, loopback addresses, local sockets; a ",
            "`hostaddr` counts over its name). For any other host it means TLS or no ",
            "connection: a server or an attacker that declines TLS never gets the password in ",
            "the clear. Ask for plaintext there with `sslmode=disable`.\n",
            "- `require`: TLS, **the certificate not checked**: safe from eavesdropping, not ",
            "from an attacker on the path who poses as the server.\n",
            "- `verify-ca`: TLS, the chain checked up to a CA of `sslrootcert` (needed), not ",
            "the host name.\n",
            "- `verify-full`: TLS, the chain and the host name checked, against `sslrootcert`, ",
            "or the system's trust store without it (or with `sslrootcert=system`, which needs ",
            "`verify-full`).\n\n",
            "`sslrootcert=<file>` (PEM) is trusted alone, not with the system's roots; with ",
            "`prefer` or `require` it turns on the chain check too. Other `sslmode` values ",
            "(`allow` included) and an unreadable `sslrootcert` are ",
            "[`Error::InvalidConfig`](catena_core::Error::InvalidConfig) from `build()`. A ",
            "server that declines required TLS, or a certificate that fails the check, is a ",
            "provider error of kind ",
            "[`Other(\"tls\")`](catena_core::ProviderErrorKind::Other), not retryable. ",
            "Client certificates are not supported: pass a [`pool`](Self::pool) built with ",
            "your own connector."
        )]
        pub fn url(mut self, url: impl Into<String>) -> Self {
            self.connect.connection = Some($crate::postgres::Connection::Url(url.into()));
            self
        }

        /// Uses an existing `deadpool-postgres` pool, so several stores (and the rest of the
        /// program) share connections. Overrides [`url`](Self::url). Default: a pool of its
        /// own.
        pub fn pool(mut self, pool: deadpool_postgres::Pool) -> Self {
            self.connect.connection = Some($crate::postgres::Connection::Pool(pool));
            self
        }

        #[doc = concat!(
            "The size of its own pool (at least 1; unused with a shared [`pool`](Self::pool)). ",
            "Default ", $max, "."
        )]
        pub fn max_connections(mut self, n: usize) -> Self {
            self.connect.max_connections = n;
            self
        }

        /// How long to wait for a new connection (and for a free pooled one). Default 10 s.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.connect.connect_timeout = timeout;
            self
        }
    };
}
pub(crate) use connection_setters;

/// The `sslmode` values of libpq that are supported (`allow` is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it; plaintext otherwise (loopback and local sockets only).
    Prefer,
    /// TLS, the certificate not checked (unless `sslrootcert` names a file).
    Require,
    /// TLS, the certificate chain checked against `sslrootcert`, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parses an `sslmode` value; anything else is [`Error::InvalidConfig`].
    fn parse(value: &str) -> Result<Self> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(Error::invalid_config(
                "sslmode=allow is not supported: use disable, prefer, require, verify-ca or \
                 verify-full",
            )),
            other => Err(Error::invalid_config(format!(
                "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            ))),
        }
    }
}

/// The TLS parameters taken out of a connection string: the last value of each, decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode`, as written.
    sslmode: Option<String>,
    /// `sslrootcert`: a PEM file of trusted CA certificates, or `system`.
    sslrootcert: Option<String>,
}

impl TlsParams {
    /// Keeps `key = value` when `key` is a TLS parameter; says whether it was.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// The connection string without `sslmode` and `sslrootcert`, and their values.
pub(crate) fn split_tls_params(conn: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find(|p| conn.starts_with(*p))
        .map(|p| p.len())
    else {
        // `key=value` pairs.
        let kept: Vec<String> = key_value_pairs(conn)
            .into_iter()
            .filter_map(|pair| match pair.raw_value {
                Some(raw) => {
                    if params.take(&pair.key, unquote(&raw)) {
                        None
                    } else {
                        Some(format!("{}={raw}", pair.key))
                    }
                }
                None => Some(pair.key),
            })
            .collect();
        return (kept.join(" "), params);
    };
    // The query starts at the first `?` after the first `@` (or after the scheme without
    // one), as tokio-postgres reads it.
    let after_scheme = &conn[scheme_end..];
    let authority_start = scheme_end + after_scheme.find('@').map_or(0, |at| at + 1);
    let Some(q) = conn[authority_start..].find('?') else {
        return (conn.to_owned(), params);
    };
    let (base, query) = conn.split_at(authority_start + q);
    let query = &query[1..];
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some((key, value)) => !params.take(&percent_decode(key), percent_decode(value)),
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), params)
    } else {
        (format!("{base}?{}", kept.join("&")), params)
    }
}

/// `%XX` escapes decoded (others kept as written); invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `key=value` value as libpq reads it: single quotes removed, backslash escapes resolved.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('\'') else {
        return raw.to_owned();
    };
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether every host the configuration may connect to is on this machine: a local socket,
/// a loopback address, or `localhost`. A `hostaddr` (the address actually dialled) counts
/// over its host name. No host at all counts as not local.
pub(crate) fn all_hosts_local(config: &tokio_postgres::Config) -> bool {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    if hosts.is_empty() {
        return !addrs.is_empty() && addrs.iter().all(is_loopback);
    }
    hosts
        .iter()
        .enumerate()
        .all(|(i, host)| match addrs.get(i) {
            Some(addr) => is_loopback(addr),
            None => match host {
                Host::Tcp(name) => is_local_name(name),
                #[cfg(unix)]
                Host::Unix(_) => true,
            },
        })
}

fn is_loopback(addr: &IpAddr) -> bool {
    addr.to_canonical().is_loopback()
}

/// `localhost` or a loopback address literal (IPv6 with or without brackets).
fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok_and(|a| is_loopback(&a))
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// The platform's trust store (`sslrootcert=system`, or none given with `verify-full`).
    System,
    /// A PEM file (`sslrootcert=<path>`), trusted alone.
    File(PathBuf),
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verify {
    /// Nothing (`prefer` and `require` without `sslrootcert`): encryption against passive
    /// eavesdropping only; an active attacker can impersonate the server.
    Nothing,
    /// The chain up to a CA of this file, not the host name (`verify-ca`, and `prefer` or
    /// `require` given a `sslrootcert` file, as in libpq).
    Chain(PathBuf),
    /// The chain and the host name (`verify-full`).
    Full(Roots),
}

/// How the connections of one pool are secured, decided once from the connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPlan {
    /// What tokio-postgres does: no TLS, TLS if offered, or TLS or nothing.
    mode: PgSslMode,
    /// What the certificate check covers.
    verify: Verify,
}

impl TlsPlan {
    /// The plan for these parameters when every host is local (`all_local`) or not.
    ///
    /// - No `sslmode` means `prefer` (libpq's default), or `verify-full` with
    ///   `sslrootcert=system`.
    /// - `prefer` falls back to plaintext only when every host is local; for any other host
    ///   it is `require` (TLS or no connection), so a server or an attacker on the path that
    ///   declines TLS never gets the password in the clear. `sslmode=disable` is the way to
    ///   ask for plaintext.
    /// - `verify-ca` needs a `sslrootcert` file; `sslrootcert=system` needs `verify-full`
    ///   (both as libpq: any public CA may sign a certificate for anyone, so against the
    ///   system's roots only the host name check means anything).
    pub(crate) fn decide(params: &TlsParams, all_local: bool) -> Result<Self> {
        let roots = match params.sslrootcert.as_deref() {
            None | Some("") => None,
            Some("system") => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
        };
        let requested = match params.sslmode.as_deref() {
            Some(mode) => SslMode::parse(mode)?,
            None if roots == Some(Roots::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if roots == Some(Roots::System) && requested != SslMode::VerifyFull {
            return Err(Error::invalid_config(
                "sslrootcert=system needs sslmode=verify-full: any public CA may sign a \
                 certificate for any name, so only the host name check makes them worth trusting",
            ));
        }
        let file = match &roots {
            Some(Roots::File(path)) => Some(path.clone()),
            _ => None,
        };
        let weak = |mode| TlsPlan {
            mode,
            verify: file.clone().map_or(Verify::Nothing, Verify::Chain),
        };
        Ok(match requested {
            SslMode::Disable => TlsPlan {
                mode: PgSslMode::Disable,
                verify: Verify::Nothing,
            },
            SslMode::Prefer if all_local => weak(PgSslMode::Prefer),
            SslMode::Prefer | SslMode::Require => weak(PgSslMode::Require),
            SslMode::VerifyCa => {
                match file {
                    Some(path) => TlsPlan {
                        mode: PgSslMode::Require,
                        verify: Verify::Chain(path),
                    },
                    None => return Err(Error::invalid_config(
                        "sslmode=verify-ca needs sslrootcert=<PEM file of the CA certificates> \
                         (use verify-full to check against the system's roots)",
                    )),
                }
            }
            SslMode::VerifyFull => TlsPlan {
                mode: PgSslMode::Require,
                verify: Verify::Full(roots.unwrap_or(Roots::System)),
            },
        })
    }

    /// The rustls configuration (on `ring`, no process-wide provider) for this plan; reads
    /// the `sslrootcert` file, if any.
    fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.verify {
            Verify::Nothing => Arc::new(ChainCheck {
                roots: None,
                provider: provider.clone(),
            }),
            Verify::Chain(path) => Arc::new(ChainCheck {
                roots: Some(Arc::new(load_roots(path)?)),
                provider: provider.clone(),
            }),
            Verify::Full(Roots::File(path)) => WebPkiServerVerifier::builder_with_provider(
                Arc::new(load_roots(path)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::invalid_config(format!("cannot verify with sslrootcert: {e}")))?,
            Verify::Full(Roots::System) => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                    Error::invalid_config(format!(
                        "could not load the platform's certificate verifier: {e}"
                    ))
                })?,
            ),
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_config(format!("could not configure TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

/// The CA certificates of a PEM file (at least one).
fn load_roots(path: &Path) -> Result<RootCertStore> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid_config(format!("cannot read sslrootcert {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Error::invalid_config(format!("invalid PEM in sslrootcert {shown}: {e}"))
        })?;
        roots.add(cert).map_err(|e| {
            Error::invalid_config(format!("unusable certificate in sslrootcert {shown}: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::invalid_config(format!(
            "sslrootcert {shown} holds no PEM certificate"
        )));
    }
    Ok(roots)
}

/// The verifier of `sslmode=prefer`/`require` and `verify-ca`: with `roots` (`verify-ca`, or a
/// root file given with a weaker mode) the chain must lead to one of them; without, any
/// certificate is accepted (libpq's semantics). The host name is never checked, but the
/// handshake signatures always are, so the server holds the key of the certificate it shows
/// (which channel binding relies on).
#[derive(Debug)]
struct ChainCheck {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `user@host:port/dbname` from a parsed configuration (never the password).
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// The connection string with any password replaced by `***`: the user-info password and a
/// `password` query parameter of a URL, or the `password` pair (quoted or not) of the
/// `key=value` form.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_values(url);
    };
    // The last `@` ends the user info, whatever the password holds; anything before it is
    // hidden.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", redact_query(host))
        }
        None => format!("{scheme}://{}", redact_query(rest)),
    }
}

/// `host/db?a=b&password=x` → `host/db?a=b&password=***`.
fn redact_query(s: &str) -> String {
    let Some((path, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// One `key=value` pair of the `key=value` form: the value as written (quotes and escapes
/// kept), or `None` for a word without `=`.
struct KeyValue {
    key: String,
    raw_value: Option<String>,
}

/// The pairs of the `key=value` form: separated by whitespace, spaces allowed around `=`,
/// values bare or single-quoted with backslash escapes (libpq's rules).
fn key_value_pairs(s: &str) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            out.push(KeyValue {
                key,
                raw_value: None,
            });
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            while let Some(c) = chars.next() {
                value.push(c);
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else if c == '\'' {
                    break;
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push(KeyValue {
            key,
            raw_value: Some(value),
        });
    }
    out
}

/// `host=h password='a b'` → `host=h password=***`.
fn redact_key_values(s: &str) -> String {
    let shown: Vec<String> = key_value_pairs(s)
        .into_iter()
        .map(|pair| match pair.raw_value {
            None => pair.key,
            Some(_) if pair.key == "password" => "password=***".to_owned(),
            Some(value) => format!("{}={value}", pair.key),
        })
        .collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("host=h password=secret"), "host=h password=***");
        for url in [
            "postgres://alice:s3cr3t-pw@db.example:5433/app",
            "host=db.example user=alice password=s3cr3t-pw dbname=app",
            "postgres://alice:s3cr3t-pw@[bad",
            "postgres://alice:s3c@r3t?x@db.example/app",
            "postgres://db.example/app?user=alice&password=s3cr3t",
            "host=h password = 's3cr3t with \\' spaces' dbname=app",
        ] {
            let shown = redact_url(url);
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("r3t"),
                "{shown}"
            );
        }
        assert_eq!(
            redact_url("host=h password = 'a b' dbname=app"),
            "host=h password=*** dbname=app"
        );
    }

    #[test]
    fn endpoints_never_show_the_password() {
        let config =
            tokio_postgres::Config::from_str("postgres://alice:pw@db.example:5433/app").unwrap();
        assert_eq!(describe(&config), "alice@db.example:5433/app");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut config = ConnectConfig::new(4);
        config.connection = Some(Connection::Url("postgres://u:hunter2@h/db".into()));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("u:***@h/db"), "{debug}");
        assert!(ConnectConfig::new(0).check().is_err());
    }

    fn params(sslmode: Option<&str>, sslrootcert: Option<&str>) -> TlsParams {
        TlsParams {
            sslmode: sslmode.map(str::to_owned),
            sslrootcert: sslrootcert.map(str::to_owned),
        }
    }

    fn local(url: &str) -> bool {
        let (rest, _) = split_tls_params(url);
        all_hosts_local(&tokio_postgres::Config::from_str(&rest).unwrap())
    }

    #[test]
    fn tls_params_are_taken_out_of_urls() {
        let (rest, p) = split_tls_params(
            "postgres://u:p%3F@h:5432/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p%3F@h:5432/db?application_name=x");
        assert_eq!(p, params(Some("verify-full"), Some("/tmp/ca.pem")));

        let (rest, p) = split_tls_params("postgresql://h/db?sslmode=require");
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(p, params(Some("require"), None));

        // A `?` in the password is not the query; the last `sslmode` wins.
        let (rest, p) = split_tls_params("postgres://u:a?b@h/db?sslmode=disable&sslmode=prefer");
        assert_eq!(rest, "postgres://u:a?b@h/db");
        assert_eq!(p, params(Some("prefer"), None));

        let (rest, p) = split_tls_params("postgres://u@h/db");
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(p, TlsParams::default());
    }

    #[test]
    fn tls_params_are_taken_out_of_key_values() {
        let (rest, p) = split_tls_params(
            "host=h password='a b' sslmode = verify-ca sslrootcert='/tmp/my ca.pem' dbname=d",
        );
        assert_eq!(rest, "host=h password='a b' dbname=d");
        assert_eq!(p, params(Some("verify-ca"), Some("/tmp/my ca.pem")));
        let config = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_password(), Some(&b"a b"[..]));
    }

    #[test]
    fn loopback_and_sockets_are_local_other_hosts_not() {
        assert!(local("postgres://u@127.0.0.1/db"));
        assert!(local("postgres://u@127.8.9.10:5433/db"));
        assert!(local("postgres://u@localhost/db"));
        assert!(local("postgres://u@[::1]:5432/db"));
        assert!(local("host=/var/run/postgresql dbname=d"));
        assert!(local("host=db.example hostaddr=127.0.0.1 dbname=d"));
        assert!(!local("postgres://u@db.example/db"));
        assert!(!local("postgres://u@10.0.0.5/db"));
        assert!(!local("postgres://u@127.0.0.1,db.example/db"));
        assert!(!local("host=localhost hostaddr=192.0.2.1 dbname=d"));
        assert!(!local("postgres://u@localhost.example/db"));
        assert!(!local("dbname=d"));
    }

    #[test]
    fn prefer_never_falls_back_to_plaintext_for_remote_hosts() {
        for p in [params(Some("prefer"), None), params(None, None)] {
            let remote = TlsPlan::decide(&p, false).unwrap();
            assert_eq!(remote.mode, PgSslMode::Require);
            assert_eq!(remote.verify, Verify::Nothing);
            let local = TlsPlan::decide(&p, true).unwrap();
            assert_eq!(local.mode, PgSslMode::Prefer);
        }
        let disable = TlsPlan::decide(&params(Some("disable"), None), false).unwrap();
        assert_eq!(disable.mode, PgSslMode::Disable);
    }

    #[test]
    fn modes_map_to_their_checks() {
        let plan = |mode, root| TlsPlan::decide(&params(mode, root), true).unwrap();
        assert_eq!(plan(Some("require"), None).verify, Verify::Nothing);
        assert_eq!(
            plan(Some("require"), Some("/ca.pem")).verify,
            Verify::Chain("/ca.pem".into())
        );
        assert_eq!(
            plan(Some("verify-ca"), Some("/ca.pem")).verify,
            Verify::Chain("/ca.pem".into())
        );
        assert_eq!(
            plan(Some("verify-full"), None).verify,
            Verify::Full(Roots::System)
        );
        assert_eq!(
            plan(Some("verify-full"), Some("/ca.pem")).verify,
            Verify::Full(Roots::File("/ca.pem".into()))
        );
        assert_eq!(
            plan(None, Some("system")).verify,
            Verify::Full(Roots::System)
        );
        assert_eq!(plan(Some("verify-full"), None).mode, PgSslMode::Require);
    }

    #[test]
    fn bad_tls_settings_are_invalid_config() {
        for (mode, root) in [
            (Some("verify_full"), None),
            (Some("allow"), None),
            (Some("REQUIRE"), None),
            (Some("verify-ca"), None),
            (Some("verify-ca"), Some("system")),
            (Some("require"), Some("system")),
        ] {
            let err = TlsPlan::decide(&params(mode, root), true).unwrap_err();
            assert!(
                matches!(err, Error::InvalidConfig(_)),
                "{mode:?} {root:?}: {err}"
            );
        }
    }

    #[test]
    fn build_reports_bad_tls_settings_without_the_password() {
        for url in [
            "postgres://u:hunter2@127.0.0.1/db?sslmode=bogus",
            "host=127.0.0.1 password=hunter2 sslmode=bogus",
            "postgres://u:hunter2@127.0.0.1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ] {
            let mut config = ConnectConfig::new(1);
            config.connection = Some(Connection::Url(url.into()));
            let err = config.build_pool().unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
