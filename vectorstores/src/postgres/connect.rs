//! The one connection configuration of the PostgreSQL types: a connection string or a shared
//! pool, the pool size and the connect timeout; the pool built from it; and the redaction of
//! connection strings wherever they are shown.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use catena_core::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

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
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| Error::invalid_config(format!("invalid connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let endpoint = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
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
            "its own of up to [`max_connections`](Self::max_connections). TLS is not built in: ",
            "use loopback or a local socket, or a [`pool`](Self::pool) built with a TLS ",
            "connector. Default: ", $url_default, "."
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

/// `host=h password='a b'` → `host=h password=***`: pairs separated by whitespace, spaces
/// allowed around `=`, values bare or single-quoted with backslash escapes (libpq's rules).
fn redact_key_values(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
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
            out.push(key);
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
        if key == "password" {
            out.push("password=***".to_owned());
        } else {
            out.push(format!("{key}={value}"));
        }
    }
    out.join(" ")
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
}
