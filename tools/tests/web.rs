//! Web tools against loopback servers: the SSRF guard (with a canary listener that must see
//! no connection), redirects, proxies, caps, timeouts, the HTTP tool's allow/deny lists and
//! DuckDuckGo result parsing. No traffic leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catena_core::{Tool, ToolError, TypedTool};
use catena_tools::{
    parse_results, HttpRequest, HttpRequestArgs, SsrfPolicy, StaticResolver, WebClient, WebFetch,
    WebSearch,
};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server on std threads, and a canary that only counts connections.

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Bytes(Vec<u8>),
    /// Write these bytes, then hold the connection open without finishing.
    Stall(Vec<u8>),
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Bytes(bytes)
}

fn redirect(location: &str) -> Reply {
    response(302, &[("Location", location)], b"")
}

struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Req>>>,
}

fn read_request(stream: &mut TcpStream) -> Option<Req> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let recorded = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let handler = Arc::clone(&handler);
            let recorded = Arc::clone(&recorded);
            std::thread::spawn(move || {
                let Some(req) = read_request(&mut stream) else {
                    return;
                };
                recorded.lock().unwrap().push(req.clone());
                match handler(&req) {
                    Reply::Bytes(b) => {
                        let _ = stream.write_all(&b);
                        let _ = stream.flush();
                    }
                    Reply::Stall(b) => {
                        let _ = stream.write_all(&b);
                        let _ = stream.flush();
                        std::thread::sleep(Duration::from_secs(30));
                    }
                }
            });
        }
    });
    Server { port, requests }
}

/// A listener on 127.0.0.1 that counts accepted connections and answers nothing useful.
fn canary() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut s) = stream {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncanary");
            }
        }
    });
    (port, hits)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn resolver() -> Arc<StaticResolver> {
    Arc::new(
        StaticResolver::new()
            .with_host("localhost", [ip("127.0.0.1"), ip("::1")])
            .with_host("internal.test", [ip("10.0.0.1")])
            .with_host("loopy.test", [ip("127.0.0.1")])
            .with_host("meta.test", [ip("169.254.169.254")])
            .with_host("mixed.test", [ip("10.0.0.1"), ip("127.0.0.1"), ip("::1")])
            .with_host("v6loop.test", [ip("::1")])
            .with_host("mapped.test", [ip("::ffff:127.0.0.1")])
            .with_host("fixture.test", [ip("127.0.0.1")]),
    )
}

fn client_for(port: u16) -> WebClient {
    WebClient::builder()
        .resolver(resolver())
        .allow_host(format!("127.0.0.1:{port}"))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

const PAGE: &str = include_str!("data/web/page.html");
const DDG: &str = include_str!("data/web/ddg_results.html");

fn fixture(canary_port: u16) -> Server {
    serve(move |req| {
        let path = req.path.as_str();
        if let Some(n) = path.strip_prefix("/chain/") {
            let n: u32 = n.parse().unwrap_or(0);
            return if n == 0 {
                response(200, &[("Content-Type", "text/plain")], b"end of chain")
            } else {
                redirect(&format!("/chain/{}", n - 1))
            };
        }
        match path {
            "/page" => response(
                200,
                &[("Content-Type", "text/html; charset=utf-8")],
                PAGE.as_bytes(),
            ),
            "/plain" => response(
                200,
                &[("Content-Type", "text/plain")],
                b"just text <b>kept</b>",
            ),
            "/image" => response(200, &[("Content-Type", "image/png")], b"\x89PNG\r\n"),
            "/big" => response(200, &[("Content-Type", "text/plain")], &vec![b'a'; 100_000]),
            "/huge" => response(200, &[("Content-Type", "text/plain")], &vec![b'b'; 3 << 20]),
            "/to-canary" => redirect(&format!("http://127.0.0.1:{canary_port}/")),
            "/to-canary-v6" => redirect(&format!("http://[::ffff:127.0.0.1]:{canary_port}/")),
            "/to-loopy" => redirect(&format!("http://loopy.test:{canary_port}/")),
            "/to-user" => redirect(&format!("http://user@127.0.0.1:{canary_port}/")),
            "/to-file" => redirect("file:///etc/passwd"),
            "/to-meta" => redirect("http://169.254.169.254/latest/meta-data/"),
            "/echo" => {
                let body = serde_json::to_vec(&json!({
                    "method": req.method,
                    "x_test": req.header("x-test"),
                    "authorization": req.header("authorization"),
                    "body": String::from_utf8_lossy(&req.body),
                }))
                .unwrap();
                response(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        ("Set-Cookie", "s=1"),
                        ("X-Reply", "yes"),
                    ],
                    &body,
                )
            }
            "/html/" => {
                if req.method == "POST" {
                    response(
                        200,
                        &[("Content-Type", "text/html; charset=UTF-8")],
                        DDG.as_bytes(),
                    )
                } else {
                    response(405, &[], b"")
                }
            }
            "/error" => response(500, &[("Content-Type", "text/plain")], b"boom"),
            _ => response(404, &[("Content-Type", "text/plain")], b"not found"),
        }
    })
}

fn assert_refused(result: Result<catena_core::ToolOutput, ToolError>, what: &str) -> ToolError {
    match result {
        Ok(out) => panic!("{what}: expected a refusal, got {out:?}"),
        Err(e) => {
            assert!(e.to_string().contains("refused"), "{what}: {e}");
            e
        }
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn ssrf_table_is_refused_and_the_canary_sees_nothing() {
    let (p, hits) = canary();
    let fixture = fixture(p);
    let client = client_for(fixture.port);
    let fetch = WebFetch::new(client.clone()).into_tool();
    let http = HttpRequest::new(client.clone()).into_tool();
    let urls = [
        format!("http://127.0.0.1:{p}/"),
        format!("https://127.0.0.1:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://127.0.0.1.:{p}/"),
        format!("http://localhost:{p}/"),
        format!("http://LOCALHOST.:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0177.0.0.1:{p}/"),
        format!("http://0177.1:{p}/"),
        format!("http://0x7f.0.0.1:{p}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://%31%32%37.0.0.1:{p}/"),
        format!("http://0:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        format!("http://[::]:{p}/"),
        format!("http://10.0.0.1:{p}/"),
        format!("http://172.16.0.1:{p}/"),
        format!("http://172.31.255.254:{p}/"),
        format!("http://192.168.1.1:{p}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://169.254.169.254:{p}/"),
        format!("http://100.64.0.1:{p}/"),
        format!("http://[fd00:ec2::254]:{p}/"),
        format!("http://[fc00::1]:{p}/"),
        format!("http://[fe80::1]:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://[::ffff:a00:1]:{p}/"),
        format!("http://[::127.0.0.1]:{p}/"),
        format!("http://[64:ff9b::7f00:1]:{p}/"),
        format!("http://[2002:7f00:1::]:{p}/"),
        format!("http://224.0.0.1:{p}/"),
        format!("http://255.255.255.255:{p}/"),
        format!("http://192.0.2.1:{p}/"),
        format!("http://198.18.0.1:{p}/"),
        format!("http://240.0.0.1:{p}/"),
        "file:///etc/passwd".to_owned(),
        format!("gopher://127.0.0.1:{p}/_GET"),
        format!("ftp://127.0.0.1:{p}/"),
        format!("ws://127.0.0.1:{p}/"),
        "data:text/html,<h1>hi</h1>".to_owned(),
        "javascript:alert(1)".to_owned(),
        format!("http://user@127.0.0.1:{p}/"),
        format!("http://user:pass@example.com@127.0.0.1:{p}/"),
        format!("http://user@127.0.0.1:{}/page", fixture.port),
        format!("http:///127.0.0.1:{p}/"),
        format!("http://127.0.0.1:{p}#@example.com/"),
        format!("http://internal.test:{p}/"),
        format!("http://loopy.test:{p}/"),
        format!("http://meta.test:{p}/"),
        format!("http://mixed.test:{p}/"),
        format!("http://v6loop.test:{p}/"),
        format!("http://mapped.test:{p}/"),
        "not a url".to_owned(),
        "http://".to_owned(),
    ];
    assert!(urls.len() >= 30);
    for url in &urls {
        assert_refused(fetch.call(json!({ "url": url })).await, url);
        assert_refused(http.call(json!({ "method": "GET", "url": url })).await, url);
    }
    // URL-shaped problems go back to the model as invalid arguments; DNS refusals are
    // execution errors.
    let e = fetch
        .call(json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)), "{e}");
    let e = fetch
        .call(json!({"url": format!("http://[::ffff:127.0.0.1]:{p}/")}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::InvalidArguments(ref m) if m.contains("loopback")),
        "{e}"
    );
    // (On a usual port: on the canary's port the port policy refuses it before DNS.)
    let e = fetch
        .call(json!({"url": "http://internal.test/"}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::Execution(ref m) if m.contains("10.0.0.1") && m.contains("private")),
        "{e}"
    );
    // The search endpoint goes through the same guard.
    let search = WebSearch::new(client)
        .with_base_url(format!("http://127.0.0.1:{p}/html/"))
        .into_tool();
    assert_refused(search.call(json!({"query": "x"})).await, "search base url");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the canary saw a connection"
    );
    // The allow-listed fixture itself is reachable.
    let ok = fetch
        .call(json!({"url": format!("http://127.0.0.1:{}/plain", fixture.port)}))
        .await
        .unwrap();
    assert_eq!(ok.content["status"], 200);
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let (p, hits) = canary();
    let fixture = fixture(p);
    let fetch = WebFetch::new(client_for(fixture.port));
    let base = format!("http://127.0.0.1:{}", fixture.port);
    for path in [
        "/to-canary",
        "/to-canary-v6",
        "/to-loopy",
        "/to-user",
        "/to-meta",
    ] {
        let e = fetch.fetch(&format!("{base}{path}")).await.unwrap_err();
        assert!(
            matches!(e, ToolError::Execution(ref m) if m.contains("refused")
                && (m.contains("redirect") || m.contains("loopy.test"))),
            "{path}: {e}"
        );
    }
    // reqwest does not follow a redirect to a non-http(s) scheme at all: the 302 comes back.
    let out = fetch.fetch(&format!("{base}/to-file")).await.unwrap();
    assert_eq!(out.status, 302);
    assert!(out.final_url.ends_with("/to-file"));
    // Five redirects are followed; a sixth is refused.
    let out = fetch.fetch(&format!("{base}/chain/5")).await.unwrap();
    assert!(out.final_url.ends_with("/chain/0"), "{}", out.final_url);
    assert_eq!(out.text, "end of chain");
    let e = fetch.fetch(&format!("{base}/chain/6")).await.unwrap_err();
    assert!(e.to_string().contains("more than 5 redirects"), "{e}");
    let e = fetch.fetch(&format!("{base}/chain/50")).await.unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the canary saw a connection"
    );
}

#[tokio::test]
async fn allow_listed_host_names_are_bound_to_their_port() {
    let (p, hits) = canary();
    let fixture = fixture(p);
    let client = WebClient::builder()
        .resolver(resolver())
        .policy(SsrfPolicy::new().allow_host(format!("fixture.test:{}", fixture.port)))
        .build()
        .unwrap();
    let fetch = WebFetch::new(client);
    let out = fetch
        .fetch(&format!("http://fixture.test:{}/plain", fixture.port))
        .await
        .unwrap();
    assert_eq!(out.status, 200);
    let e = fetch
        .fetch(&format!("http://fixture.test:{p}/"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not on port"), "{e}");
    // The allow-list entry is a name: the fixture's IP is still refused.
    let e = fetch
        .fetch(&format!("http://127.0.0.1:{}/plain", fixture.port))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    let (proxy_port, proxy_hits) = canary();
    let fixture = fixture(0);
    let names = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    let saved: Vec<_> = names.iter().map(|n| (*n, std::env::var_os(n))).collect();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    for n in &names[..6] {
        std::env::set_var(n, &proxy);
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let client = WebClient::builder()
        .resolver(resolver())
        .allow_host(format!("fixture.test:{}", fixture.port))
        .allow_host(format!("127.0.0.1:{}", fixture.port))
        .build();
    let fetch = client.map(WebFetch::new);
    let (by_name, by_ip) = match &fetch {
        Ok(f) => (
            f.fetch(&format!("http://fixture.test:{}/plain", fixture.port))
                .await,
            f.fetch(&format!("http://127.0.0.1:{}/plain", fixture.port))
                .await,
        ),
        Err(e) => panic!("{e}"),
    };
    for (n, v) in saved {
        match v {
            Some(v) => std::env::set_var(n, v),
            None => std::env::remove_var(n),
        }
    }
    assert_eq!(by_name.unwrap().text, "just text <b>kept</b>");
    assert_eq!(by_ip.unwrap().status, 200);
    assert_eq!(
        proxy_hits.load(Ordering::SeqCst),
        0,
        "the proxy saw a connection"
    );
}

#[tokio::test]
async fn fetch_reads_html_as_text() {
    let fixture = fixture(0);
    let fetch = WebFetch::new(client_for(fixture.port));
    let base = format!("http://127.0.0.1:{}", fixture.port);
    let out = fetch.fetch(&format!("{base}/page")).await.unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.title.as_deref(), Some("Catena Field Guide & Notes"));
    assert!(!out.truncated);
    assert!(out.text.contains("Chains and tools"), "{}", out.text);
    assert!(out
        .text
        .contains("Catena composes models, retrievers and tools into chains."));
    assert!(out.text.contains("Prices start at £5 – see below."));
    for hidden in [
        "do-not-show",
        "injected-by-script",
        "enable-javascript",
        "display: none",
        "font-family",
    ] {
        assert!(!out.text.contains(hidden), "{hidden} in {}", out.text);
    }
    assert_eq!(out.final_url, format!("{base}/page"));
    // Plain text passes through; other types are refused; errors pages are returned.
    let out = fetch.fetch(&format!("{base}/plain")).await.unwrap();
    assert_eq!(
        (out.text.as_str(), out.title),
        ("just text <b>kept</b>", None)
    );
    let e = fetch.fetch(&format!("{base}/image")).await.unwrap_err();
    assert!(
        matches!(e, ToolError::Execution(ref m) if m.contains("image/png")),
        "{e}"
    );
    let out = fetch.fetch(&format!("{base}/error")).await.unwrap();
    assert_eq!((out.status, out.text.as_str()), (500, "boom"));
    // Through the dyn tool: the JSON shape.
    let tool = fetch.clone().into_tool();
    let v = tool
        .call(json!({"url": format!("{base}/page")}))
        .await
        .unwrap()
        .content;
    for key in ["url", "final_url", "status", "title", "text", "truncated"] {
        assert!(v.get(key).is_some(), "{key} missing from {v}");
    }
    let e = tool.call(json!({"link": "x"})).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
}

#[tokio::test]
async fn bodies_are_capped() {
    let fixture = fixture(0);
    let client = WebClient::builder()
        .resolver(resolver())
        .allow_host(format!("127.0.0.1:{}", fixture.port))
        .max_body_bytes(1000)
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", fixture.port);
    let out = WebFetch::new(client.clone())
        .fetch(&format!("{base}/big"))
        .await
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.text.len(), 1000);
    let out = WebFetch::new(client)
        .with_max_chars(10)
        .fetch(&format!("{base}/big"))
        .await
        .unwrap();
    assert_eq!((out.text.len(), out.truncated), (10, true));
    // Default cap: 2 MiB.
    let out = WebFetch::new(client_for(fixture.port))
        .with_max_chars(usize::MAX)
        .fetch(&format!("{base}/huge"))
        .await
        .unwrap();
    assert!(out.truncated);
    assert_eq!(out.text.len(), 2 << 20);
}

#[tokio::test]
async fn stalling_servers_time_out() {
    let stall = serve(|req| {
        if req.path == "/partial" {
            Reply::Stall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nstart"
                    .to_vec(),
            )
        } else {
            Reply::Stall(Vec::new())
        }
    });
    let client = WebClient::builder()
        .resolver(resolver())
        .allow_host(format!("127.0.0.1:{}", stall.port))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let fetch = WebFetch::new(client);
    for path in ["/nothing", "/partial"] {
        let started = Instant::now();
        let e = fetch
            .fetch(&format!("http://127.0.0.1:{}{path}", stall.port))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{path}: {e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{path}");
    }
}

#[tokio::test]
async fn http_tool_methods_and_headers() {
    let fixture = fixture(0);
    let url = format!("http://127.0.0.1:{}/echo", fixture.port);
    let http = HttpRequest::new(client_for(fixture.port));
    let get = |method: &str| HttpRequestArgs {
        method: method.to_owned(),
        url: url.clone(),
        headers: None,
        body: None,
    };
    let out = http.send(get("get")).await.unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.headers.get("x-reply").map(String::as_str), Some("yes"));
    assert!(!out.headers.contains_key("set-cookie"));
    let echoed: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(echoed["method"], "GET");
    let out = http.send(get("HEAD")).await.unwrap();
    assert_eq!((out.status, out.body.as_str()), (200, ""));
    for m in ["POST", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE"] {
        let e = http.send(get(m)).await.unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(ref s) if s.contains("not allowed")),
            "{m}: {e}"
        );
    }
    for h in [
        "Host",
        "authorization",
        "Cookie",
        "Proxy-Authorization",
        "proxy-connection",
        "X-Forwarded-For",
        "Forwarded",
        "Transfer-Encoding",
        "Content-Length",
        "Connection",
    ] {
        let mut args = get("GET");
        args.headers = Some([(h.to_owned(), "x".to_owned())].into());
        let e = http.send(args).await.unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(ref s) if s.contains("not allowed")),
            "{h}: {e}"
        );
    }
    let mut args = get("GET");
    args.headers = Some([("X-Test".to_owned(), "1".to_owned())].into());
    let out = http.send(args).await.unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(echoed["x_test"], "1");
    let mut args = get("GET");
    args.headers = Some([("bad header".to_owned(), "1".to_owned())].into());
    assert!(matches!(
        http.send(args).await,
        Err(ToolError::InvalidArguments(_))
    ));

    // Configured: POST and Authorization allowed; request body capped.
    let http = HttpRequest::new(client_for(fixture.port))
        .with_methods(["get", "post"])
        .allow_authorization(true)
        .with_max_request_body(16);
    let mut args = get("POST");
    args.headers = Some([("Authorization".to_owned(), "Bearer t".to_owned())].into());
    args.body = Some("hello".to_owned());
    let out = http.send(args).await.unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(
        (echoed["method"].as_str(), echoed["body"].as_str()),
        (Some("POST"), Some("hello"))
    );
    assert_eq!(echoed["authorization"], "Bearer t");
    let mut args = get("POST");
    args.body = Some("x".repeat(17));
    assert!(matches!(
        http.send(args).await,
        Err(ToolError::InvalidArguments(_))
    ));
    let recorded = fixture.requests.lock().unwrap();
    assert!(recorded.iter().all(|r| r.header("cookie").is_none()));
}

#[tokio::test]
async fn search_parses_the_results_page() {
    let fixture = fixture(0);
    let search = WebSearch::new(client_for(fixture.port))
        .with_base_url(format!("http://127.0.0.1:{}/html/", fixture.port));
    let results = search.search("rust async runtime", None).await.unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].title, "Tokio - An asynchronous Rust runtime");
    assert_eq!(results[0].url, "https://tokio.rs/");
    assert_eq!(
        results[0].snippet,
        "Tokio is an event-driven, non-blocking I/O platform for writing asynchronous applications with the Rust programming language."
    );
    assert_eq!(results[1].url, "https://rust-lang.github.io/async-book/");
    assert_eq!(
        results[2].title,
        "smol - Rust & friends: a small \"and\" fast runtime"
    );
    assert_eq!(
        results[2].url,
        "https://docs.rs/smol/latest/smol/?search=spawn&mode=full"
    );
    assert_eq!(
        results[2].snippet,
        "A small and fast async runtime. It's built from a few crates & re-exports them."
    );
    assert_eq!(results[3].title, "Nebenläufigkeit – Wikipedia");
    assert_eq!(
        results[3].url,
        "https://de.wikipedia.org/wiki/Nebenl%C3%A4ufigkeit"
    );
    assert!(results
        .iter()
        .all(|r| !r.url.contains("duckduckgo") && !r.title.contains("Buy")));
    {
        let recorded = fixture.requests.lock().unwrap();
        let req = recorded.iter().find(|r| r.path == "/html/").unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(String::from_utf8_lossy(&req.body), "q=rust+async+runtime");
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
    let tool = search.clone().into_tool();
    let out = tool
        .call(json!({"query": "rust", "max_results": 2}))
        .await
        .unwrap();
    assert_eq!(out.content.as_array().unwrap().len(), 2);
    let out = tool
        .call(json!({"query": "rust", "max_results": 10}))
        .await
        .unwrap();
    let all = out.content.as_array().unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[6]["url"], "https://github.com/bytedance/monoio");
    assert_eq!(all[6]["snippet"], "");
    let e = tool.call(json!({"query": "  "})).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    let broken = WebSearch::new(client_for(fixture.port))
        .with_base_url(format!("http://127.0.0.1:{}/error", fixture.port));
    assert!(matches!(
        broken.search("x", None).await,
        Err(ToolError::Execution(_))
    ));
    assert_eq!(parse_results(DDG, 3).len(), 3);
    assert!(parse_results("<html>no results</html>", 5).is_empty());
}

#[test]
fn resolver_addresses_are_used() {
    let r = resolver();
    let addrs =
        futures::executor::block_on(catena_tools::HostResolver::resolve(&*r, "MIXED.test."))
            .unwrap();
    assert_eq!(addrs.len(), 3);
}

proptest::proptest! {
    #[test]
    fn guard_never_panics(s in ".*") {
        let policy = SsrfPolicy::new().allow_host(&s);
        let _ = policy.parse_url(&s);
        let _ = SsrfPolicy::new().parse_url(&s);
        let _ = parse_results(&s, 3);
    }

    #[test]
    fn guard_never_panics_on_url_like_strings(
        scheme in "(http|https|ftp|file|gopher|[a-z]{1,5})",
        rest in "[-a-zA-Z0-9.:@\\[\\]%/?#_~!$&'()*+,;=]{0,40}",
    ) {
        let url = format!("{scheme}://{rest}");
        let _ = SsrfPolicy::new().allow_host(&rest).parse_url(&url);
    }
}

#[tokio::test]
async fn client_address_and_method_override_headers_are_refused() {
    let fixture = fixture(0);
    let http = HttpRequest::new(client_for(fixture.port));
    for h in [
        "True-Client-IP",
        "X-Client-IP",
        "CF-Connecting-IP",
        "Client-IP",
        "X-Originating-IP",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let args = HttpRequestArgs {
            method: "GET".into(),
            url: format!("http://127.0.0.1:{}/echo", fixture.port),
            headers: Some([(h.to_owned(), "127.0.0.1".to_owned())].into()),
            body: None,
        };
        let e = http.send(args).await.unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(ref s) if s.contains("not allowed")),
            "{h}: {e}"
        );
    }
    assert!(
        fixture.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn the_hosts_own_addresses_denied_ranges_and_odd_ports_are_refused() {
    use catena_tools::{AddressClass, Refusal};
    let public = ip("93.184.216.34");
    // This host's own addresses come from the system (loopback at least, on Linux).
    assert!(catena_tools::local_addresses().contains(&ip("127.0.0.1")));
    // A public address that is one of this host's own is refused like loopback.
    let own = SsrfPolicy::new().with_local_addresses([public]);
    assert_eq!(own.classify(public), Some(AddressClass::LocalInterface));
    assert!(matches!(
        own.parse_url("http://93.184.216.34/"),
        Err(Refusal::Blocked {
            class: AddressClass::LocalInterface,
            ..
        })
    ));
    // ... also when a name resolves to it (the guarded resolver asks the policy).
    let client = WebClient::builder()
        .resolver(Arc::new(
            StaticResolver::new().with_host("own.test", [public]),
        ))
        .policy(SsrfPolicy::new().with_local_addresses([public]))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let e = WebFetch::new(client)
        .into_tool()
        .call(json!({ "url": "http://own.test/" }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("an address of this host"), "{e}");

    // A deny-list of ranges on top of the non-public ones; an entry that does not parse
    // refuses everything.
    let denied = SsrfPolicy::new().deny_cidr("93.184.0.0/16");
    assert!(matches!(
        denied.parse_url("http://93.184.216.34/"),
        Err(Refusal::Blocked {
            class: AddressClass::Denied,
            ..
        })
    ));
    assert!(denied.parse_url("http://8.8.8.8/").is_ok());
    assert!(SsrfPolicy::new()
        .deny_cidr("not a range")
        .parse_url("http://8.8.8.8/")
        .is_err());

    // Public hosts on the usual ports only, unless configured.
    let default = SsrfPolicy::new();
    for port in [22, 25, 6379, 9200, 11211] {
        let url = format!("http://8.8.8.8:{port}/");
        assert!(
            matches!(default.parse_url(&url), Err(Refusal::Port { port: p, .. }) if p == port),
            "{url}"
        );
        assert!(default
            .parse_url(&format!("http://example.com:{port}/"))
            .is_err());
    }
    for port in [80, 443, 8080, 8443] {
        assert!(default
            .parse_url(&format!("https://8.8.8.8:{port}/"))
            .is_ok());
    }
    assert!(SsrfPolicy::new()
        .allow_ports([])
        .parse_url("http://8.8.8.8:22/")
        .is_ok());
    // Allow-listed hosts keep their own port rules.
    assert!(SsrfPolicy::new()
        .allow_host("127.0.0.1:6379")
        .parse_url("http://127.0.0.1:6379/")
        .is_ok());
}

#[tokio::test]
async fn response_headers_reaching_the_model_are_capped() {
    let server = serve(|_| {
        let mut head =
            String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n");
        for i in 0..90 {
            head.push_str(&format!("X-Noise-{i:03}: {}\r\n", "v".repeat(150)));
        }
        head.push_str(&format!("X-Aaa-Huge: {}\r\n\r\nok", "h".repeat(8000)));
        Reply::Bytes(head.into_bytes())
    });
    let http = HttpRequest::new(client_for(server.port));
    let out = http
        .send(HttpRequestArgs {
            method: "GET".into(),
            url: format!("http://127.0.0.1:{}/", server.port),
            headers: None,
            body: None,
        })
        .await
        .unwrap();
    assert!(out.headers.len() <= 64, "{}", out.headers.len());
    assert!(out.headers.values().all(|v| v.chars().count() <= 1024));
    let total: usize = out.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(total <= 16 << 10, "{total}");
    assert!(out.truncated);
    assert_eq!(out.body, "ok");
}
