//! Authentication: API keys (configured as SHA-256 hashes, compared in constant time) and JWTs
//! name a [`Caller`]: who it is, the tenant whose documents it may read and write, and its
//! [`Scope`]s.
//!
//! ```
//! use example_gateway::auth::{hash_key, ApiKeys, Scope};
//! use example_gateway::config::KeyConfig;
//!
//! let keys = ApiKeys::from_hashes(&[hash_key("s3cret")]).unwrap();
//! let caller = keys.verify("s3cret").unwrap();
//! assert_eq!(caller.tenant, caller.id); // a plain key is a tenant of its own
//! assert!(caller.has(Scope::Query) && !caller.has(Scope::Admin));
//! assert!(keys.verify("guess").is_none());
//!
//! let ops = KeyConfig::new(hash_key("ops"), "acme").scopes([Scope::Admin]);
//! let keys = ApiKeys::new(&[], &[ops]).unwrap();
//! let caller = keys.verify("ops").unwrap();
//! assert_eq!(caller.tenant, "acme");
//! assert!(caller.has(Scope::Admin) && !caller.has(Scope::Ingest));
//! ```

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{JwtConfig, KeyConfig};
use crate::error::GatewayError;

/// The metadata key under which the gateway stores each chunk's tenant (set by the gateway,
/// never taken from the client) and by which it filters every retrieval.
pub const TENANT_METADATA_KEY: &str = "tenant";

/// What a caller may do; each protected route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/documents`.
    Ingest,
    /// `POST /v1/query`.
    Query,
    /// `POST /v1/tasks`.
    Tasks,
    /// `GET /metrics`.
    Admin,
}

impl Scope {
    /// What a key or token without configured scopes may do: everything but `admin`.
    pub const DEFAULT: [Scope; 3] = [Scope::Ingest, Scope::Query, Scope::Tasks];

    /// The scope's name, as in the configuration and a JWT's `scope` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
            Scope::Tasks => "tasks",
            Scope::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        [Scope::Ingest, Scope::Query, Scope::Tasks, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Who called: a short, non-secret id (for rate-limit buckets, budgets and logs), the tenant
/// whose documents it reads and writes, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// `key-` and the first bytes of the key's hash, or `jwt:<sub>`.
    pub id: String,
    /// The tenant: every document it ingests is stored under it, every retrieval is limited to it.
    pub tenant: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the caller has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The accepted keys (their hashes only), each with its tenant and scopes.
#[derive(Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<([u8; 32], Option<String>, Vec<Scope>)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.hashes.len())
            .finish()
    }
}

/// A fresh random API key (`ck_` and 48 hex digits), for a run that has none configured.
///
/// # Errors
/// [`GatewayError::Config`] when the system has no randomness to give.
pub fn generate_key() -> Result<String, GatewayError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| GatewayError::Config("no system randomness for an API key".into()))?;
    Ok(format!(
        "ck_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The SHA-256 of `key`, as 64 lowercase hex digits.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// Keys from their hex SHA-256 hashes; each is a tenant of its own with the default
    /// scopes ([`Scope::DEFAULT`]).
    ///
    /// # Errors
    /// [`GatewayError::Config`] for a value that is not 64 hex digits.
    pub fn from_hashes(hashes: &[String]) -> Result<Self, GatewayError> {
        Self::new(hashes, &[])
    }

    /// Plain keys (`auth.api_key_sha256`: each its own tenant, default scopes) and keys
    /// with a tenant and scopes (`[[auth.keys]]`).
    ///
    /// # Errors
    /// [`GatewayError::Config`] for a hash that is not 64 hex digits, an empty tenant, or a
    /// key listed twice.
    pub fn new(plain: &[String], keys: &[KeyConfig]) -> Result<Self, GatewayError> {
        let hash = |h: &str| {
            decode_hex(h.trim()).ok_or_else(|| {
                GatewayError::Config("an API key hash is not 64 hex digits".to_owned())
            })
        };
        let mut hashes = Vec::with_capacity(plain.len() + keys.len());
        for h in plain {
            hashes.push((hash(h)?, None, Scope::DEFAULT.to_vec()));
        }
        for k in keys {
            if k.tenant.trim().is_empty() {
                return Err(GatewayError::Config(
                    "auth.keys: a key's tenant must not be empty".to_owned(),
                ));
            }
            let scopes = k.scopes.clone().unwrap_or_else(|| Scope::DEFAULT.to_vec());
            hashes.push((hash(&k.sha256)?, Some(k.tenant.clone()), scopes));
        }
        let mut seen = std::collections::HashSet::new();
        if hashes.iter().any(|(h, _, _)| !seen.insert(*h)) {
            return Err(GatewayError::Config(
                "an API key is configured twice".to_owned(),
            ));
        }
        Ok(ApiKeys { hashes })
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The caller for `presented`, if it is an accepted key. Every configured hash is compared,
    /// in constant time, whatever matches.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<usize> = None;
        for (i, (h, _, _)) in self.hashes.iter().enumerate() {
            if bool::from(h.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found.map(|i| {
            let (h, tenant, scopes) = &self.hashes[i];
            let id = format!("key-{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3]);
            Caller {
                tenant: tenant.clone().unwrap_or_else(|| id.clone()),
                id,
                scopes: scopes.clone(),
            }
        })
    }
}

/// Validates JWT bearer tokens with one pinned algorithm and key.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: Option<String>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Space-separated scopes (RFC 8693 `scope`); absent: [`Scope::DEFAULT`].
    #[serde(default)]
    scope: Option<String>,
    /// Every other claim, for the configured tenant claim.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl JwtVerifier {
    /// A verifier for `config`.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for an unknown algorithm, a missing secret or key file, or a
    /// key that does not parse.
    pub fn new(config: &JwtConfig) -> Result<Self, GatewayError> {
        let bad = |m: String| GatewayError::Config(format!("auth.jwt: {m}"));
        let algorithm: Algorithm = config
            .algorithm
            .parse()
            .map_err(|_| bad(format!("unknown algorithm {:?}", config.algorithm)))?;
        let pem = || -> Result<Vec<u8>, GatewayError> {
            let path = config
                .public_key_pem
                .as_ref()
                .ok_or_else(|| bad(format!("{} needs public_key_pem", config.algorithm)))?;
            std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = config
                    .secret
                    .as_deref()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| {
                        bad("HS* needs CATENA_JWT_SECRET of at least 32 bytes".to_owned())
                    })?;
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                DecodingKey::from_rsa_pem(&pem()?).map_err(|e| bad(e.to_string()))?
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(&pem()?).map_err(|e| bad(e.to_string()))?
            }
            Algorithm::EdDSA => {
                DecodingKey::from_ed_pem(&pem()?).map_err(|e| bad(e.to_string()))?
            }
            other => return Err(bad(format!("algorithm {other:?} is not supported"))),
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(JwtVerifier {
            key,
            validation,
            tenant_claim: config.tenant_claim.clone(),
        })
    }

    /// The caller a valid token names (`jwt:<sub>`), or why the token is refused (never
    /// quoting it). Its tenant is the configured tenant claim (a non-empty string), else the
    /// caller itself; its scopes are the `scope` claim's, else [`Scope::DEFAULT`].
    ///
    /// # Errors
    /// A short reason: expired, not yet valid, wrong issuer or audience, bad signature,
    /// wrong algorithm, malformed, a missing or empty tenant claim, an unknown scope.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => {
                let claims = data.claims;
                let id = format!("jwt:{}", claims.sub);
                let tenant = match &self.tenant_claim {
                    None => id.clone(),
                    Some(name) => match claims.other.get(name).and_then(|v| v.as_str()) {
                        Some(t) if !t.trim().is_empty() => t.to_owned(),
                        _ => return Err(format!("the token lacks the `{name}` claim")),
                    },
                };
                let scopes = match claims.scope {
                    None => Scope::DEFAULT.to_vec(),
                    Some(list) => list
                        .split_whitespace()
                        .map(|s| Scope::parse(s).ok_or("the token names an unknown scope"))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                Ok(Caller { id, tenant, scopes })
            }
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is malformed",
            }
            .to_owned()),
        }
    }
}

/// Whether a bearer credential has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The bearer token of an `Authorization` header value, if it has one.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Some(token.trim())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hash_and_bearer_parsing() {
        assert_eq!(
            hash_key("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        let keys = ApiKeys::from_hashes(&[hash_key("a"), hash_key("b")]).unwrap();
        assert_ne!(keys.verify("a"), keys.verify("b"));
        assert!(!format!("{keys:?}").contains(&hash_key("a")));
    }
}
