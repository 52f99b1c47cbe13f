//! The MCP client against a real MCP server (rmcp's server side, `mcp_support`): as a
//! child process over stdio (this test binary run again) and over streamable HTTP on
//! 127.0.0.1. Tool lists with schemas and pagination, calls, `isError`, invalid
//! arguments, timeouts with cancellation, a server that exits mid-call, the child killed
//! on drop, bearer tokens sent but never shown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mcp_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catena_core::{Tool, ToolError};
use catena_tools::{McpClient, McpClientBuilder, McpError, McpTool, INVALID_PARAMS};
use mcp_support::{HttpServer, FIXTURE_ENV, TOKEN};
use serde_json::json;

/// Bounds every test step, so a hang fails instead of stalling the run.
const STEP: Duration = Duration::from_secs(20);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {STEP:?}"))
}

/// Not a test: the stdio fixture server, when this binary is run with `FIXTURE_ENV` set.
/// libtest writes a line or two of its own to stdout first; they are not JSON, and MCP
/// clients skip such lines. A newline ends any line libtest left open.
#[test]
fn fixture_stdio_server() {
    if std::env::var(FIXTURE_ENV).as_deref() != Ok("stdio") {
        return;
    }
    let mut stdout = std::io::stdout();
    std::io::Write::write_all(&mut stdout, b"\n").unwrap();
    std::io::Write::flush(&mut stdout).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(mcp_support::serve_stdio());
    std::process::exit(0);
}

fn stdio() -> McpClientBuilder {
    McpClient::stdio(std::env::current_exe().unwrap())
        .args([
            "fixture_stdio_server",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(FIXTURE_ENV, "stdio")
}

async fn tool(client: &McpClient, name: &str) -> McpTool {
    client
        .tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

fn names(tools: &[Arc<dyn Tool>]) -> Vec<&str> {
    tools.iter().map(|t| t.name()).collect()
}

// ---------------------------------------------------------------------------------------
// stdio

#[tokio::test]
async fn stdio_lists_tools_with_schemas_across_pages() {
    let client = bounded("connect", stdio().connect()).await.unwrap();
    let info = client.server_info().unwrap();
    assert_eq!(info.name.as_deref(), Some("catena-fixture"));
    assert_eq!(info.version.as_deref(), Some("1.2.3"));
    assert_eq!(info.instructions.as_deref(), Some("Use add for sums."));
    assert!(client.server().contains("(stdio)"), "{}", client.server());

    // Six tools, two a page: the client followed the cursor over three pages.
    let tools = bounded("list", client.list_tools()).await.unwrap();
    assert_eq!(
        names(&tools),
        ["add", "echo", "fail", "slow", "pid", "exit"]
    );
    let add = &tools[0];
    assert_eq!(add.description(), "Adds two integers.");
    assert_eq!(add.parameters()["type"], "object");
    assert_eq!(
        add.parameters()["properties"]["a"],
        json!({"type": "integer", "description": "First addend."})
    );
    assert_eq!(add.parameters()["required"], json!(["a", "b"]));
    let definition = add.definition();
    assert_eq!(definition.name, "add");
    assert_eq!(definition.parameters, *add.parameters());
}

#[tokio::test]
async fn stdio_calls_map_results_and_errors() {
    let client = bounded("connect", stdio().connect()).await.unwrap();
    let tools = bounded("list", client.list_tools()).await.unwrap();
    let by_name = |n: &str| tools.iter().find(|t| t.name() == n).unwrap().clone();

    // Structured content comes back as JSON.
    let out = bounded("add", by_name("add").call(json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert_eq!(out.content, json!({"sum": 5}));

    // Text blocks are joined, one a line.
    let out = bounded(
        "echo",
        by_name("echo").call(json!({"text": "hi", "times": 2})),
    )
    .await
    .unwrap();
    assert_eq!(out.content, json!("hi\nhi"));
    assert_eq!(out.to_text(), "hi\nhi");

    // isError: true is the tool's failure, for the model to read.
    let err = bounded("fail", by_name("fail").call(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::Execution("the disk is full".into()));

    // The server's "invalid params" answer goes back to the model as invalid arguments.
    let err = bounded("add", by_name("add").call(json!({"a": "two", "b": 3})))
        .await
        .unwrap_err();
    match &err {
        ToolError::InvalidArguments(m) => {
            assert!(m.contains("`a` and `b` must be integers"), "{m}");
            assert!(m.contains("tools/call `add`"), "{m}");
        }
        other => panic!("expected invalid arguments, got {other:?}"),
    }
    // Arguments that are not an object never reach the server.
    let err = bounded("add", by_name("add").call(json!([1, 2])))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidArguments(m) if m.contains("an array")),
        "{err:?}"
    );

    // The typed view keeps protocol errors apart from the tool's own answer.
    let add = tool(&client, "add").await;
    let typed = bounded("add", add.invoke(json!({"a": 1}))).await;
    match typed {
        Err(McpError::Server { code, .. }) => assert_eq!(code, INVALID_PARAMS),
        other => panic!("expected a server error, got {other:?}"),
    }
    let fail = tool(&client, "fail").await;
    let answered = bounded("fail", fail.invoke(json!({}))).await.unwrap();
    assert_eq!(
        answered,
        Err(ToolError::Execution("the disk is full".into()))
    );
}

#[tokio::test]
async fn stdio_call_timeout_cancels_and_the_client_stays_usable() {
    let client = bounded(
        "connect",
        stdio().call_timeout(Duration::from_millis(300)).connect(),
    )
    .await
    .unwrap();
    let slow = tool(&client, "slow").await;

    let started = Instant::now();
    let err = bounded("slow", slow.invoke(json!({"ms": 10_000})))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &err {
        McpError::Timeout {
            operation, after, ..
        } => {
            assert_eq!(operation, "tools/call `slow`");
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_timeout());
    assert!(err.to_string().contains("timed out after 300 ms"), "{err}");

    // Through the Tool trait the timeout is an execution failure.
    let err = bounded("slow", slow.call(json!({"ms": 10_000})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Execution(m) if m.contains("timed out")),
        "{err:?}"
    );

    // The connection is still good.
    let out = bounded("slow", slow.call(json!({"ms": 1}))).await.unwrap();
    assert_eq!(out.content, json!("done"));
}

#[tokio::test]
async fn stdio_server_that_exits_mid_call_is_a_closed_error() {
    let client = bounded("connect", stdio().connect()).await.unwrap();
    let exit = tool(&client, "exit").await;
    let add = tool(&client, "add").await;

    let err = bounded("exit", exit.invoke(json!({}))).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    assert!(err.to_string().contains("connection closed"), "{err}");

    // Later calls fail the same way, at once.
    let err = bounded("add", add.invoke(json!({"a": 1, "b": 2})))
        .await
        .unwrap_err();
    assert!(err.is_closed(), "{err:?}");
    let err = bounded("add", add.call(json!({"a": 1, "b": 2})))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Execution(_)), "{err:?}");
    assert!(client.is_closed());
    let err = bounded("list", client.tools()).await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
}

#[tokio::test]
async fn stdio_child_is_killed_when_the_client_and_its_tools_are_dropped() {
    let client = bounded("connect", stdio().connect()).await.unwrap();
    let pid_tool = tool(&client, "pid").await;
    let out = bounded("pid", pid_tool.call(json!({}))).await.unwrap();
    let pid: u32 = out.to_text().parse().unwrap();
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());

    // A tool keeps the connection alive on its own.
    drop(client);
    let out = bounded("pid", pid_tool.call(json!({}))).await.unwrap();
    assert_eq!(out.to_text(), pid.to_string());

    drop(pid_tool);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "server {pid} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process runs (a zombie waiting to be reaped does not count).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

#[tokio::test]
async fn prefix_and_filters_choose_and_rename_tools() {
    let client = bounded(
        "connect",
        stdio()
            .tool_prefix("fx_")
            .allow_tools(["add", "echo"])
            .allow_tools(["fail"])
            .deny_tools(["fail", "slow"])
            .connect(),
    )
    .await
    .unwrap();
    let tools = bounded("list", client.tools()).await.unwrap();
    let listed: Vec<(&str, &str)> = tools.iter().map(|t| (t.name(), t.remote_name())).collect();
    assert_eq!(listed, [("fx_add", "add"), ("fx_echo", "echo")]);
    let out = bounded("add", tools[0].call(json!({"a": 40, "b": 2})))
        .await
        .unwrap();
    assert_eq!(out.content, json!({"sum": 42}));
    let debug = format!("{:?}", tools[0]);
    assert!(
        debug.contains("fx_add") && debug.contains("remote_name"),
        "{debug}"
    );
}

#[tokio::test]
async fn start_failures_are_typed_and_do_not_hang() {
    let err = McpClient::stdio("/nonexistent/catena-mcp-server")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, McpError::Spawn { program, .. } if program.contains("catena-mcp-server")),
        "{err:?}"
    );

    // A program that exits without speaking MCP.
    let err = bounded("connect", McpClient::stdio("true").connect())
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("`true` (stdio)"), "{err}");

    // A program that never answers: the connect timeout ends the wait.
    let err = bounded(
        "connect",
        McpClient::stdio("sleep")
            .arg("30")
            .connect_timeout(Duration::from_millis(300))
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

/// Set (to the env dump's path) in the environment of the re-run test binary that plays
/// the parent process holding secrets; see `stdio_servers_get_an_allow_listed_environment`.
const ENV_PARENT: &str = "CATENA_MCP_ENV_PARENT";
/// A secret in the parent's environment, as an API key would be.
const PARENT_SECRET: (&str, &str) = ("CATENA_TEST_PROVIDER_API_KEY", "sk-parent-secret-0123");

/// Starts the fixture server through `sh`, which first writes the environment it got to
/// `dump`: what the server process would see.
#[cfg(unix)]
fn env_dumping_stdio(dump: &str) -> McpClientBuilder {
    McpClient::stdio("sh")
        .args([
            "-c",
            "env > \"$0\" && exec \"$@\"",
            dump,
            std::env::current_exe().unwrap().to_str().unwrap(),
            "fixture_stdio_server",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env(FIXTURE_ENV, "stdio")
}

#[cfg(unix)]
async fn child_env(builder: McpClientBuilder, dump: &std::path::Path) -> Vec<(String, String)> {
    let client = bounded("connect", builder.connect()).await.unwrap();
    assert!(!bounded("list", client.tools()).await.unwrap().is_empty());
    drop(client);
    std::fs::read_to_string(dump)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Not a test on its own: the parent process of
/// `stdio_servers_get_an_allow_listed_environment`, run with a secret in its environment.
#[cfg(unix)]
#[test]
fn fixture_env_parent() {
    let Some(dir) = std::env::var_os(ENV_PARENT) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    assert_eq!(
        std::env::var(PARENT_SECRET.0).as_deref(),
        Ok(PARENT_SECRET.1),
        "the parent holds the secret"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Default: the allow-list only, plus what the builder sets.
        let dump = dir.join("default.env");
        let env = child_env(
            env_dumping_stdio(dump.to_str().unwrap()).env("SERVER_TOKEN", "for-the-server"),
            &dump,
        )
        .await;
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(!names.contains(&PARENT_SECRET.0), "{names:?}");
        assert!(
            !env.iter().any(|(_, v)| v.contains(PARENT_SECRET.1)),
            "{names:?}"
        );
        assert!(!names.contains(&"CATENA_TEST_SHARED"), "{names:?}");
        assert!(!names.contains(&ENV_PARENT), "{names:?}");
        assert!(names.contains(&"PATH"), "{names:?}");
        assert!(
            env.contains(&("SERVER_TOKEN".into(), "for-the-server".into())),
            "{names:?}"
        );
        for name in &names {
            assert!(
                McpClientBuilder::DEFAULT_INHERITED_ENV.contains(name)
                    || ["SERVER_TOKEN", FIXTURE_ENV, "PWD", "SHLVL", "_", "OLDPWD"].contains(name),
                "{name} reached the server"
            );
        }

        // A name the user allows is passed on; still no secret.
        let dump = dir.join("inherit.env");
        let env = child_env(
            env_dumping_stdio(dump.to_str().unwrap()).inherit_env("CATENA_TEST_SHARED"),
            &dump,
        )
        .await;
        assert!(env.contains(&("CATENA_TEST_SHARED".into(), "shared".into())));
        assert!(!env.iter().any(|(k, _)| k == PARENT_SECRET.0));

        // env_clear: not even the allow-list (PATH is given explicitly, for `sh`'s `env`).
        let dump = dir.join("clear.env");
        let env = child_env(
            env_dumping_stdio(dump.to_str().unwrap())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap()),
            &dump,
        )
        .await;
        assert!(!env.iter().any(|(k, _)| k == "HOME"), "{env:?}");
        assert!(!env.iter().any(|(k, _)| k == PARENT_SECRET.0));

        // The explicit opt-out inherits everything.
        let dump = dir.join("all.env");
        let env = child_env(
            env_dumping_stdio(dump.to_str().unwrap()).inherit_all_env(),
            &dump,
        )
        .await;
        assert!(env.contains(&(PARENT_SECRET.0.into(), PARENT_SECRET.1.into())));
    });
}

/// The parent's secrets do not reach a stdio server: this test binary is run again as a
/// parent holding an API key in its environment (set on that process only), and each
/// server it starts writes down the environment it got.
#[cfg(unix)]
#[test]
fn stdio_servers_get_an_allow_listed_environment() {
    let dir = std::env::temp_dir().join(format!("catena-mcp-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "fixture_env_parent",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_PARENT, &dir)
        .env(PARENT_SECRET.0, PARENT_SECRET.1)
        .env("CATENA_TEST_SHARED", "shared")
        .env("HOME", &dir)
        .output()
        .unwrap();
    let all_written = dir.join("all.env").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "{log}");
    assert!(all_written, "{log}");
}

#[tokio::test]
async fn settings_that_do_not_fit_are_reported_by_connect() {
    let cases = [
        McpClient::http("http://127.0.0.1:1/mcp").arg("--verbose"),
        McpClient::http("http://127.0.0.1:1/mcp").env("A", "B"),
        McpClient::stdio("server").bearer_token("t0k"),
        McpClient::stdio("server").header("x-api-key", "k"),
        McpClient::stdio(""),
        McpClient::stdio("server").inherit_env("A=B"),
        McpClient::http("http://127.0.0.1:1/mcp").inherit_env("PATH"),
        McpClient::http("http://127.0.0.1:1/mcp").inherit_all_env(),
        McpClient::http("ftp://example.com/mcp"),
        McpClient::http("not a url"),
        McpClient::http("https://user:pw@example.com/mcp"),
        McpClient::http("http://127.0.0.1:1/mcp").header("bad header", "v"),
        McpClient::http("http://127.0.0.1:1/mcp").call_timeout(Duration::ZERO),
    ];
    for builder in cases {
        let shown = format!("{builder:?}");
        let err = builder.connect().await.unwrap_err();
        assert!(
            matches!(err, McpError::InvalidConfig(_)),
            "{shown}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// streamable HTTP

#[tokio::test]
async fn http_lists_pages_and_calls_with_the_bearer_token() {
    let server = HttpServer::start().await;
    let client = bounded(
        "connect",
        McpClient::http(format!("{}?tenant=a", server.url))
            .bearer_token(TOKEN)
            .header("x-client", "catena-tests")
            .connect(),
    )
    .await
    .unwrap();
    assert_eq!(client.server(), server.url, "the query is not shown");
    assert_eq!(
        client.server_info().unwrap().name.as_deref(),
        Some("catena-fixture")
    );

    let tools = bounded("list", client.list_tools()).await.unwrap();
    assert_eq!(names(&tools), ["add", "echo", "fail", "slow", "pid"]);
    assert_eq!(server.seen.list_requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        tools[1].parameters()["properties"]["times"],
        json!({"type": "integer", "minimum": 1})
    );

    let out = bounded("add", tools[0].call(json!({"a": -4, "b": 1})))
        .await
        .unwrap();
    assert_eq!(out.content, json!({"sum": -3}));
    let out = bounded("echo", tools[1].call(json!({"text": "über"})))
        .await
        .unwrap();
    assert_eq!(out.content, json!("über"));
    let err = bounded("fail", tools[2].call(json!({}))).await.unwrap_err();
    assert_eq!(err, ToolError::Execution("the disk is full".into()));
    let err = bounded("add", tools[0].call(json!({"b": 1})))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments(_)), "{err:?}");

    // Every request carried the token; the client never shows it.
    let seen = server.seen.authorization.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|a| *a == format!("Bearer {TOKEN}")),
        "{seen:?}"
    );
    let debug = format!("{client:?} {:?}", tool(&client, "add").await);
    assert!(!debug.contains(TOKEN), "{debug}");
    let builder = McpClient::http(format!("{}?key=query-secret", server.url))
        .bearer_token(TOKEN)
        .header("x-api-key", "header-secret");
    let debug = format!("{builder:?}");
    for secret in [TOKEN, "header-secret", "query-secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains("[redacted]") && debug.contains(&server.url),
        "{debug}"
    );
    let debug = format!("{:?}", stdio().env("API_KEY", "env-secret"));
    assert!(
        debug.contains("API_KEY") && !debug.contains("env-secret"),
        "{debug}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http_timeout_sends_cancellation() {
    let server = HttpServer::start().await;
    let client = bounded(
        "connect",
        McpClient::http(&server.url)
            .bearer_token(TOKEN)
            .call_timeout(Duration::from_millis(300))
            .connect(),
    )
    .await
    .unwrap();
    let slow = tool(&client, "slow").await;
    let err = bounded("slow", slow.invoke(json!({"ms": 10_000})))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // The server hears `notifications/cancelled` and stops the work.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.seen.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the server saw no cancellation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = bounded("slow", slow.call(json!({"ms": 1}))).await.unwrap();
    assert_eq!(out.content, json!("done"));
    server.stop().await;
}

#[tokio::test]
async fn http_wrong_token_is_an_auth_error_that_does_not_leak_it() {
    let server = HttpServer::start().await;
    let wrong = "wrong-token-7d1e";
    let err = bounded(
        "connect",
        McpClient::http(&server.url).bearer_token(wrong).connect(),
    )
    .await
    .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(shown.contains(&server.url), "{shown}");
    }
    assert_eq!(
        server.seen.authorization.lock().unwrap().first().cloned(),
        Some(format!("Bearer {wrong}")),
        "the token was sent"
    );

    // No token at all.
    let err = bounded("connect", McpClient::http(&server.url).connect())
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn http_server_that_goes_away_is_a_typed_error() {
    let server = HttpServer::start().await;
    let url = server.url.clone();
    let client = bounded(
        "connect",
        McpClient::http(&url)
            .bearer_token(TOKEN)
            .call_timeout(Duration::from_secs(5))
            .connect(),
    )
    .await
    .unwrap();
    let add = tool(&client, "add").await;
    server.stop().await;

    let err = bounded("add", add.invoke(json!({"a": 1, "b": 2})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, McpError::Closed { .. } | McpError::Transport { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
    let err = bounded("add", add.call(json!({"a": 1, "b": 2})))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Execution(_)), "{err:?}");

    // Nothing listening at all; neither the token nor the URL's query shows.
    let err = bounded(
        "connect",
        McpClient::http(format!("{url}?key=query-secret"))
            .bearer_token(TOKEN)
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, McpError::Connect { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("Connection refused"), "{shown}");
    assert!(
        !shown.contains(TOKEN) && !shown.contains("query-secret"),
        "{shown}"
    );
}
