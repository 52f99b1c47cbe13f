//! API keys and tokens that never print.

use std::fmt;
use std::sync::Arc;

use catena_core::Error;

/// A secret (API key, bearer token). Its `Debug` prints `ApiKey(<redacted>)`; it has no
/// `Display`, and it is marked sensitive on every request header it is put in, so it never
/// reaches logs, traces or error messages.
///
/// ```
/// use catena_llms::ApiKey;
/// let key = ApiKey::new("sk-very-secret");
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert_eq!(key.expose_secret(), "sk-very-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a secret, without surrounding whitespace (a key read from a file keeps no
    /// trailing newline).
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        ApiKey(Arc::from(secret.trim()))
    }

    /// The secret itself. Call only to put it on the wire.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl From<String> for ApiKey {
    fn from(s: String) -> Self {
        ApiKey::new(s)
    }
}

impl From<&str> for ApiKey {
    fn from(s: &str) -> Self {
        ApiKey::new(s)
    }
}

/// Keys shorter than this are not searched for in messages: they are not real secrets
/// (local servers accept anything) and replacing them would garble the text.
const MIN_REDACTED_LEN: usize = 8;

/// Replaces every occurrence of `secret` in `text` with `<redacted>`, including a prefix of
/// it left at the end of a message cut at a length limit.
#[cfg_attr(not(feature = "__http"), allow(dead_code))]
pub(crate) fn redact_text(text: &str, secret: &str) -> String {
    if secret.len() < MIN_REDACTED_LEN {
        return text.to_owned();
    }
    let mut out = text.replace(secret, "<redacted>");
    for n in (MIN_REDACTED_LEN..secret.len()).rev() {
        if let Some(prefix) = secret.get(..n) {
            if out.ends_with(prefix) {
                out.truncate(out.len() - n);
                out.push_str("<redacted>");
                break;
            }
        }
    }
    out
}

/// Removes `key` from a provider error's message. Providers may echo the `Authorization`
/// header in error bodies; this keeps it out of `Display`, `Debug` and logs.
#[cfg_attr(not(any(feature = "openai", feature = "anthropic")), allow(dead_code))]
pub(crate) fn redact(err: Error, key: Option<&ApiKey>) -> Error {
    let Some(secret) = key.map(ApiKey::expose_secret) else {
        return err;
    };
    match err {
        Error::Provider(mut p) => {
            p.message = redact_text(&p.message, secret);
            Error::Provider(p)
        }
        Error::Other { message, source } => Error::Other {
            message: redact_text(&message, secret),
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_and_redacted_whole_or_cut() {
        let key = ApiKey::new("  sk-abcdefghijklmnop\n");
        assert_eq!(key.expose_secret(), "sk-abcdefghijklmnop");
        assert_eq!(
            redact_text(
                "Bearer sk-abcdefghijklmnop; cut sk-abcdefgh",
                key.expose_secret()
            ),
            "Bearer <redacted>; cut <redacted>"
        );
        assert_eq!(redact_text("x marks", "x"), "x marks");
    }
}
