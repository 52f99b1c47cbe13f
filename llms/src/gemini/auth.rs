//! OAuth access tokens for Vertex AI: the [`TokenSource`] trait, a caching layer, and
//! sources for a fixed token, a service-account key, an `authorized_user` refresh token
//! (what `gcloud auth application-default login` writes), and Application Default
//! Credentials.
//!
//! ```no_run
//! use catena_llms::gemini::{CachedTokenSource, ServiceAccountTokenSource, TokenSource};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let source = CachedTokenSource::new(ServiceAccountTokenSource::from_file("sa.json")?);
//! let token = source.token().await?; // fetched once, reused until 5 minutes before expiry
//! # let _ = token;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use catena_core::{Error, ProviderErrorKind, Result};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use super::error::finish_error;
use crate::http::{provider_error, HttpOptions, Transport};
use crate::secret::ApiKey;

/// The environment variable naming a credentials JSON file (service account or
/// authorized user), as every Google SDK reads it.
pub const GOOGLE_APPLICATION_CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The OAuth scope Vertex AI needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's OAuth token endpoint.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

const TOKEN_PROVIDER: &str = "google-oauth";

/// An OAuth access token and when it expires.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessToken {
    /// The bearer token (redacted in `Debug`).
    pub token: ApiKey,
    /// When the token stops working; `None` for a token that never expires (as far as we
    /// know).
    pub expires_at: Option<SystemTime>,
}

impl AccessToken {
    /// A token that expires at `expires_at` (`None`: never).
    pub fn new(token: impl Into<ApiKey>, expires_at: Option<SystemTime>) -> Self {
        AccessToken {
            token: token.into(),
            expires_at,
        }
    }

    /// Whether more than `margin` of validity is left.
    pub fn is_fresh(&self, margin: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => at
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > margin),
        }
    }
}

/// Where Vertex AI bearer tokens come from.
///
/// Implement it to plug in another credential (workload identity, the metadata server, a
/// secret manager). Clients wrap every source in a [`CachedTokenSource`], so `token` may
/// fetch a new token on every call.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A token that is valid now.
    ///
    /// # Errors
    /// [`ProviderErrorKind::Auth`] when the credentials are rejected; transport errors when
    /// the token endpoint cannot be reached.
    async fn token(&self) -> Result<AccessToken>;
}

#[async_trait]
impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    async fn token(&self) -> Result<AccessToken> {
        (**self).token().await
    }
}

#[async_trait]
impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    async fn token(&self) -> Result<AccessToken> {
        (**self).token().await
    }
}

/// A fixed token, e.g. from `gcloud auth print-access-token`. It is never refreshed.
#[derive(Debug, Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// A token with no known expiry.
    pub fn new(token: impl Into<ApiKey>) -> Self {
        StaticToken(AccessToken::new(token, None))
    }
}

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<AccessToken> {
        Ok(self.0.clone())
    }
}

/// Caches another source's token and refreshes it when less than the refresh margin
/// (default 5 minutes) is left. Concurrent callers that find the token stale wait for one
/// refresh instead of each fetching their own.
pub struct CachedTokenSource {
    inner: Arc<dyn TokenSource>,
    margin: Duration,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
}

impl fmt::Debug for CachedTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTokenSource")
            .field("refresh_margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl CachedTokenSource {
    /// Caches `inner`'s tokens.
    pub fn new(inner: impl TokenSource + 'static) -> Self {
        CachedTokenSource {
            inner: Arc::new(inner),
            margin: Duration::from_secs(300),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// How long before expiry a token is replaced. Default 5 minutes.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Forgets the cached token, so the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[async_trait]
impl TokenSource for CachedTokenSource {
    async fn token(&self) -> Result<AccessToken> {
        // Holding the lock across the fetch makes concurrent refreshes single-flight.
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.is_fresh(self.margin)) {
            return Ok(t.clone());
        }
        let fresh = self.inner.token().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// Percent-encodes `application/x-www-form-urlencoded` pairs.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, s) in [k, v].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// Token endpoints answer errors as `{"error": "invalid_grant", "error_description": "..."}`.
fn oauth_error_hook(status: u16, body: &Value) -> (Option<ProviderErrorKind>, Option<String>) {
    let code = body.get("error").and_then(Value::as_str);
    let description = body.get("error_description").and_then(Value::as_str);
    let message = match (code, description) {
        (Some(c), Some(d)) => format!("token endpoint: {c}: {d}"),
        (Some(c), None) => format!("token endpoint: {c}"),
        (None, Some(d)) => format!("token endpoint: {d}"),
        (None, None) => format!("token endpoint answered HTTP {status}"),
    };
    let kind = match status {
        400..=403 => Some(ProviderErrorKind::Auth),
        _ => None,
    };
    (kind, Some(message))
}

fn token_transport(http: HttpOptions) -> Result<Transport> {
    Transport::new(TOKEN_PROVIDER, http, |status, body| {
        oauth_error_hook(status, body).into()
    })
}

/// POSTs a form to a token endpoint and reads `{access_token, expires_in}`.
async fn exchange(
    transport: &Transport,
    uri: &str,
    form: String,
    secrets: &[&str],
) -> Result<AccessToken> {
    let requested = SystemTime::now();
    let reply: Value = transport
        .json(|| {
            transport
                .client
                .post(uri)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.clone())
        })
        .await
        .map_err(|e| {
            let mut secrets = secrets.to_vec();
            secrets.push(&form);
            finish_error(e, &secrets)
        })?;
    let token = reply
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            provider_error(
                TOKEN_PROVIDER,
                ProviderErrorKind::Auth,
                "token endpoint answered without an access_token",
            )
        })?;
    let expires_at = reply
        .get("expires_in")
        .and_then(token_lifetime)
        .and_then(|lifetime| requested.checked_add(lifetime));
    Ok(AccessToken::new(token, expires_at))
}

/// The longest lifetime taken from a token endpoint's `expires_in`: a larger (or absurd) value
/// still gets the token refreshed daily.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A token endpoint's `expires_in` (seconds, as a JSON number or string), through checked
/// conversions: negative means already expired, huge is capped at [`MAX_TOKEN_LIFETIME`], and
/// what is not a number at all (`NaN`, text) is `None` (no known expiry).
fn token_lifetime(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if secs.is_nan() {
        return None;
    }
    // Negative is "already expired"; +inf and values past the cap are the cap.
    Some(
        Duration::try_from_secs_f64(secs.clamp(0.0, MAX_TOKEN_LIFETIME.as_secs_f64()))
            .map_or(MAX_TOKEN_LIFETIME, |d| d.min(MAX_TOKEN_LIFETIME)),
    )
}

fn field<'a>(json: &'a Value, name: &str, what: &str) -> Result<&'a str> {
    json.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_config(format!("{what} JSON has no `{name}`")))
}

fn parse_credentials(json: &str, what: &str) -> Result<Value> {
    // Parse into a `Value` and pick fields by hand, so that errors never quote the file.
    let value: Value = serde_json::from_str(json).map_err(|e| {
        Error::invalid_config(format!(
            "{what} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(Error::invalid_config(format!(
            "{what} is not a JSON object"
        )));
    }
    Ok(value)
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::io(
            format!("reading Google credentials from {}", path.display()),
            e,
        )
    })
}

/// Parses an RSA private key in PEM form: PKCS#8 (`BEGIN PRIVATE KEY`, what service-account
/// files hold) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
fn parse_private_key(pem: &str) -> Result<RsaKeyPair> {
    let bad = |why: &str| Error::invalid_config(format!("the service account's private_key {why}"));
    let (label, body) = ["PRIVATE KEY", "RSA PRIVATE KEY"]
        .iter()
        .find_map(|label| {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let start = pem.find(&begin)? + begin.len();
            let stop = pem[start..].find(&end)? + start;
            Some((*label, &pem[start..stop]))
        })
        .ok_or_else(|| bad("is not a PEM private key"))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| bad("is not valid base64"))?;
    let pair = if label == "PRIVATE KEY" {
        RsaKeyPair::from_pkcs8(&der)
    } else {
        RsaKeyPair::from_der(&der)
    };
    pair.map_err(|e| bad(&format!("is not a usable RSA key ({e})")))
}

/// Signs RS256 JWTs with a service account's key and trades them for access tokens
/// (RFC 7523 `jwt-bearer` grant) at the account's `token_uri`.
pub struct ServiceAccountTokenSource {
    client_email: String,
    private_key_id: Option<String>,
    key: Arc<RsaKeyPair>,
    token_uri: String,
    scopes: String,
    transport: Transport,
}

impl fmt::Debug for ServiceAccountTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountTokenSource")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokenSource {
    /// A source from the text of a service-account key file (`client_email`,
    /// `private_key` as PEM, optional `private_key_id` and `token_uri`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for JSON without those fields or a key that does not parse;
    /// the message never quotes the key.
    pub fn from_json(json: &str) -> Result<Self> {
        let what = "service-account credentials";
        let v = parse_credentials(json, what)?;
        let key = parse_private_key(field(&v, "private_key", what)?)?;
        Ok(ServiceAccountTokenSource {
            client_email: field(&v, "client_email", what)?.to_owned(),
            private_key_id: v
                .get("private_key_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            key: Arc::new(key),
            token_uri: v
                .get("token_uri")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_owned(),
            scopes: CLOUD_PLATFORM_SCOPE.to_owned(),
            transport: token_transport(HttpOptions::default())?,
        })
    }

    /// A source from a service-account key file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, else as for [`from_json`](Self::from_json).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_json(&read_file(path.as_ref())?)
    }

    /// The token endpoint (also the JWT's `aud`). Default: the file's `token_uri`, else
    /// [`DEFAULT_TOKEN_URI`].
    #[must_use]
    pub fn with_token_uri(mut self, uri: impl Into<String>) -> Self {
        self.token_uri = uri.into();
        self
    }

    /// The OAuth scopes asked for. Default [`CLOUD_PLATFORM_SCOPE`].
    #[must_use]
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes
            .into_iter()
            .map(Into::into)
            .collect::<Vec<_>>()
            .join(" ");
        self
    }

    /// HTTP settings for the token endpoint. Default [`HttpOptions::default`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the HTTP client cannot be built.
    pub fn with_http(mut self, http: HttpOptions) -> Result<Self> {
        self.transport = token_transport(http)?;
        Ok(self)
    }

    /// The signed JWT assertion for `now` (seconds since the epoch).
    fn assertion(&self, now: u64) -> Result<String> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": self.scopes,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::other("signing the service-account JWT failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[async_trait]
impl TokenSource for ServiceAccountTokenSource {
    async fn token(&self) -> Result<AccessToken> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.assertion(now)?;
        let form = form_encode(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ]);
        exchange(&self.transport, &self.token_uri, form, &[&assertion]).await
    }
}

/// Trades an OAuth refresh token for access tokens: the `authorized_user` credentials that
/// `gcloud auth application-default login` writes.
pub struct AuthorizedUserTokenSource {
    client_id: String,
    client_secret: ApiKey,
    refresh_token: ApiKey,
    token_uri: String,
    transport: Transport,
}

impl fmt::Debug for AuthorizedUserTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUserTokenSource")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl AuthorizedUserTokenSource {
    /// A source from explicit OAuth client credentials and a refresh token.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ApiKey>,
        refresh_token: impl Into<ApiKey>,
    ) -> Result<Self> {
        Ok(AuthorizedUserTokenSource {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            token_uri: DEFAULT_TOKEN_URI.to_owned(),
            transport: token_transport(HttpOptions::default())?,
        })
    }

    /// A source from the text of an `authorized_user` JSON file (`client_id`,
    /// `client_secret`, `refresh_token`, optional `token_uri`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a field is missing.
    pub fn from_json(json: &str) -> Result<Self> {
        let what = "authorized-user credentials";
        let v = parse_credentials(json, what)?;
        let source = Self::new(
            field(&v, "client_id", what)?,
            field(&v, "client_secret", what)?,
            field(&v, "refresh_token", what)?,
        )?;
        Ok(match v.get("token_uri").and_then(Value::as_str) {
            Some(uri) => source.with_token_uri(uri),
            None => source,
        })
    }

    /// A source from an `authorized_user` JSON file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, else as for [`from_json`](Self::from_json).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_json(&read_file(path.as_ref())?)
    }

    /// The token endpoint. Default [`DEFAULT_TOKEN_URI`].
    #[must_use]
    pub fn with_token_uri(mut self, uri: impl Into<String>) -> Self {
        self.token_uri = uri.into();
        self
    }

    /// HTTP settings for the token endpoint. Default [`HttpOptions::default`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the HTTP client cannot be built.
    pub fn with_http(mut self, http: HttpOptions) -> Result<Self> {
        self.transport = token_transport(http)?;
        Ok(self)
    }
}

#[async_trait]
impl TokenSource for AuthorizedUserTokenSource {
    async fn token(&self) -> Result<AccessToken> {
        let form = form_encode(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", self.refresh_token.expose_secret()),
        ]);
        let secrets = [
            self.client_secret.expose_secret(),
            self.refresh_token.expose_secret(),
        ];
        exchange(&self.transport, &self.token_uri, form, &secrets).await
    }
}

/// A token source from the text of a credentials file, picked by its `type`:
/// `service_account` or `authorized_user`.
///
/// # Errors
/// [`Error::InvalidConfig`] for other types (external accounts, impersonation) or bad
/// files.
pub fn credentials_from_json(json: &str) -> Result<Arc<dyn TokenSource>> {
    let v = parse_credentials(json, "Google credentials")?;
    match v.get("type").and_then(Value::as_str) {
        Some("service_account") => Ok(Arc::new(ServiceAccountTokenSource::from_json(json)?)),
        Some("authorized_user") => Ok(Arc::new(AuthorizedUserTokenSource::from_json(json)?)),
        Some(other) => Err(Error::invalid_config(format!(
            "Google credentials of type `{other}` are not supported; use a service account or \
             authorized-user file, or implement TokenSource"
        ))),
        None => Err(Error::invalid_config(
            "Google credentials JSON has no `type`",
        )),
    }
}

fn well_known_adc_path() -> Option<PathBuf> {
    if cfg!(windows) {
        std::env::var_os("APPDATA").map(|d| PathBuf::from(d).join("gcloud"))
    } else {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("gcloud"))
    }
    .map(|dir| dir.join("application_default_credentials.json"))
}

/// Application Default Credentials: the file named by `GOOGLE_APPLICATION_CREDENTIALS`,
/// else gcloud's `application_default_credentials.json`
/// (`~/.config/gcloud/` on Unix, `%APPDATA%\gcloud\` on Windows), read as by
/// [`credentials_from_json`].
///
/// The GCE / Cloud Run metadata server is **not** consulted; on Google Cloud compute,
/// implement [`TokenSource`] over it or pass a [`StaticToken`].
///
/// # Errors
/// [`Error::InvalidConfig`] when no credentials are found or they cannot be used;
/// [`Error::Io`] when the named file cannot be read.
pub fn application_default_credentials() -> Result<Arc<dyn TokenSource>> {
    if let Some(path) =
        std::env::var_os(GOOGLE_APPLICATION_CREDENTIALS_ENV).filter(|p| !p.is_empty())
    {
        return credentials_from_json(&read_file(Path::new(&path))?);
    }
    match well_known_adc_path().filter(|p| p.is_file()) {
        Some(path) => credentials_from_json(&read_file(&path)?),
        None => Err(Error::invalid_config(
            "no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a service-account \
             or authorized-user JSON file, run `gcloud auth application-default login`, or pass \
             a token source (metadata-server credentials are not supported)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("a", "x y/+=")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&a=x%20y%2F%2B%3D"
        );
    }

    #[test]
    fn token_lifetimes_from_extreme_numbers() {
        use serde_json::json;
        let day = MAX_TOKEN_LIFETIME;
        let cases = [
            (json!(3600), Some(Duration::from_secs(3600))),
            (json!("3600"), Some(Duration::from_secs(3600))),
            (json!(3599.5), Some(Duration::from_millis(3_599_500))),
            (json!(u64::MAX), Some(day)),
            (json!(u64::MAX.to_string()), Some(day)),
            (json!(1e308), Some(day)),
            (json!("1e309"), Some(day)),
            (json!("inf"), Some(day)),
            (json!("9".repeat(400)), Some(day)),
            (json!(-1), Some(Duration::ZERO)),
            (json!(i64::MIN), Some(Duration::ZERO)),
            (json!("-inf"), Some(Duration::ZERO)),
            (json!(format!("-{}", "9".repeat(400))), Some(Duration::ZERO)),
            (json!("NaN"), None),
            (json!("soon"), None),
            (json!(null), None),
            (json!([1]), None),
        ];
        for (value, expected) in cases {
            assert_eq!(token_lifetime(&value), expected, "{value}");
            if let Some(d) = token_lifetime(&value) {
                // What `exchange` does with it: never an overflow.
                let _ = SystemTime::now().checked_add(d);
            }
        }
    }

    #[test]
    fn freshness() {
        let soon = AccessToken::new("t", Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(!soon.is_fresh(Duration::from_secs(300)));
        assert!(soon.is_fresh(Duration::from_secs(10)));
        assert!(AccessToken::new("t", None).is_fresh(Duration::from_secs(300)));
        let past = AccessToken::new("t", Some(UNIX_EPOCH));
        assert!(!past.is_fresh(Duration::ZERO));
    }

    #[test]
    fn bad_credentials_never_quote_the_file() {
        let e = ServiceAccountTokenSource::from_json(
            r#"{"client_email": "a@b", "private_key": "SECRETSECRET"}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("SECRETSECRET"), "{e}");
        let e = credentials_from_json(r#"{"type": "external_account"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("external_account"), "{e}");
    }
}
