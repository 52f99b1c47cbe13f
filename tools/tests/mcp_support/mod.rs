//! A real MCP server for the MCP client tests, written with rmcp's server side.
//!
//! Tools: `add` (structured JSON), `echo` (text blocks), `fail` (`isError: true`), `slow`
//! (sleeps; notices cancellation), `pid` (the server's process id) and, over stdio only,
//! `exit` (the server process exits mid-call). `tools/list` hands out two tools a page.
//!
//! Over stdio the server is this test binary run again with [`FIXTURE_ENV`] set (see
//! `fixture_stdio_server` in `mcp.rs`); over HTTP it is rmcp's streamable HTTP service in
//! an axum router on 127.0.0.1:0, behind a bearer-token check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// Set to `stdio` in the environment of the re-run test binary to make it the server.
pub(crate) const FIXTURE_ENV: &str = "CATENA_MCP_FIXTURE";
/// The token the HTTP fixture accepts.
pub(crate) const TOKEN: &str = "s3cret-token-9f2c";
/// Tools a `tools/list` page holds.
const PAGE_SIZE: usize = 2;

/// What the server saw, for the tests to assert on.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// `tools/list` requests.
    pub(crate) list_requests: AtomicUsize,
    /// `slow` calls that were cancelled by the client.
    pub(crate) cancelled: AtomicUsize,
    /// The `Authorization` headers of HTTP requests.
    pub(crate) authorization: Mutex<Vec<String>>,
}

/// The fixture server.
#[derive(Clone)]
pub(crate) struct Fixture {
    seen: Arc<Seen>,
    stdio: bool,
}

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are objects"),
    }
}

impl Fixture {
    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![
            Tool::new(
                "add",
                "Adds two integers.",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "a": {"type": "integer", "description": "First addend."},
                        "b": {"type": "integer", "description": "Second addend."}
                    },
                    "required": ["a", "b"]
                })),
            ),
            Tool::new(
                "echo",
                "Echoes a text, once a block.",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "times": {"type": "integer", "minimum": 1}
                    },
                    "required": ["text"]
                })),
            ),
            Tool::new("fail", "Always fails.", schema(json!({"type": "object"}))),
            Tool::new(
                "slow",
                "Sleeps for `ms` milliseconds.",
                schema(json!({
                    "type": "object",
                    "properties": {"ms": {"type": "integer"}},
                    "required": ["ms"]
                })),
            ),
            Tool::new(
                "pid",
                "The server's process id.",
                schema(json!({"type": "object"})),
            ),
        ];
        if self.stdio {
            tools.push(Tool::new(
                "exit",
                "Exits the server process.",
                schema(json!({"type": "object"})),
            ));
        }
        tools
    }
}

fn args(params: &CallToolRequestParams) -> Value {
    Value::Object(params.arguments.clone().unwrap_or_default())
}

fn text(s: impl Into<String>) -> ContentBlock {
    ContentBlock::text(s)
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("catena-fixture", "1.2.3"))
            .with_instructions("Use add for sums.")
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.seen.list_requests.fetch_add(1, Ordering::SeqCst);
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .map_err(|_| ErrorData::invalid_params("bad cursor", None))?,
        };
        let tools = self.tools();
        let end = (start + PAGE_SIZE).min(tools.len());
        let mut page = ListToolsResult::with_all_items(tools[start..end].to_vec());
        if end < tools.len() {
            page.next_cursor = Some(end.to_string());
        }
        Ok(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = args(&request);
        let result = match request.name.as_ref() {
            "add" => {
                let (Some(a), Some(b)) = (args["a"].as_i64(), args["b"].as_i64()) else {
                    return Err(ErrorData::invalid_params(
                        "`a` and `b` must be integers",
                        None,
                    ));
                };
                CallToolResult::structured(json!({"sum": a + b}))
            }
            "echo" => {
                let Some(t) = args["text"].as_str() else {
                    return Err(ErrorData::invalid_params("`text` is required", None));
                };
                let times = args["times"].as_u64().unwrap_or(1);
                CallToolResult::success((0..times).map(|_| text(t)).collect())
            }
            "fail" => CallToolResult::error(vec![text("the disk is full")]),
            "slow" => {
                let ms = args["ms"].as_u64().unwrap_or(0);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = context.ct.cancelled() => {
                        self.seen.cancelled.fetch_add(1, Ordering::SeqCst);
                        return Err(ErrorData::internal_error("cancelled", None));
                    }
                }
                CallToolResult::success(vec![text("done")])
            }
            "pid" => CallToolResult::success(vec![text(std::process::id().to_string())]),
            "exit" if self.stdio => std::process::exit(3),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no tool named `{other}`"),
                    None,
                ))
            }
        };
        Ok(result.into())
    }
}

/// Serves MCP on this process's stdin and stdout until the client goes away.
pub(crate) async fn serve_stdio() {
    let fixture = Fixture {
        seen: Arc::default(),
        stdio: true,
    };
    let running = fixture
        .serve(rmcp::transport::stdio())
        .await
        .expect("stdio handshake");
    let _ = running.waiting().await;
}

/// A streamable HTTP server on loopback.
pub(crate) struct HttpServer {
    /// The MCP endpoint.
    pub(crate) url: String,
    /// What the server saw.
    pub(crate) seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
    stop: Box<dyn FnOnce() + Send>,
}

impl HttpServer {
    /// Starts a server that accepts only `Authorization: Bearer TOKEN`.
    pub(crate) async fn start() -> HttpServer {
        let seen = Arc::new(Seen::default());
        let config = StreamableHttpServerConfig::default();
        let shutdown = config.cancellation_token.clone();
        let fixture = Fixture {
            seen: seen.clone(),
            stdio: false,
        };
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new().nest_service("/mcp", service).layer(
            axum::middleware::from_fn_with_state(seen.clone(), check_token),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        HttpServer {
            url,
            seen,
            task,
            stop: Box::new(move || shutdown.cancel()),
        }
    }

    /// Stops the server: open sessions end and the port stops answering.
    pub(crate) async fn stop(self) {
        (self.stop)();
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn check_token(State(seen): State<Arc<Seen>>, request: Request, next: Next) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.authorization.lock().unwrap().push(auth.clone());
    if auth != format!("Bearer {TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"fixture\"")],
            "bad token",
        )
            .into_response();
    }
    next.run(request).await
}
