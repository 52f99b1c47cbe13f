//! [`McpClient`] and its builder: one connection to one MCP server.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use catena_core::Tool;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};

use super::error::McpError;
use super::tool::McpTool;

/// Default for [`McpClientBuilder::call_timeout`]: 60 seconds.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`McpClientBuilder::connect_timeout`]: 30 seconds.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most `tools/list` pages [`McpClient::list_tools`] follows before it gives up on a
/// server whose cursor never ends.
pub(crate) const MAX_TOOL_PAGES: usize = 100;

/// The `initialize` handshake in flight, whichever the transport.
type Connecting = Pin<
    Box<
        dyn Future<Output = Result<RunningService<RoleClient, ClientConfig>, ClientInitializeError>>
            + Send,
    >,
>;

/// The HTTP transport's error type.
type HttpError = StreamableHttpError<reqwest::Error>;

/// A string that never shows in `Debug` output.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the server is.
#[derive(Clone)]
enum Target {
    Stdio {
        program: OsString,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
        inherit: EnvInherit,
        inherit_names: Vec<OsString>,
        current_dir: Option<PathBuf>,
    },
    Http {
        url: String,
        bearer: Option<Secret>,
        headers: Vec<(String, Secret)>,
    },
}

/// Whether `name` can name an environment variable (`std::env::var_os` may panic otherwise).
fn is_env_name(name: &std::ffi::OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    !bytes.is_empty() && !bytes.contains(&b'=') && !bytes.contains(&0)
}

/// What a stdio server's process inherits from this process's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvInherit {
    /// [`McpClientBuilder::DEFAULT_INHERITED_ENV`] plus the names given to `inherit_env`.
    AllowList,
    /// Only the names given to `inherit_env`.
    Nothing,
    /// Everything (`inherit_all_env`).
    All,
}

/// Shows no secret: environment values are left out, and so is the URL's query.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stdio {
                program,
                args,
                env,
                inherit,
                inherit_names,
                current_dir,
            } => f
                .debug_struct("Stdio")
                .field("program", program)
                .field("args", args)
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .field("inherit", inherit)
                .field("inherit_names", inherit_names)
                .field("current_dir", current_dir)
                .finish(),
            Target::Http {
                url,
                bearer,
                headers,
            } => f
                .debug_struct("Http")
                .field("url", &url.split(['?', '#']).next().unwrap_or_default())
                .field("bearer", bearer)
                .field("headers", headers)
                .finish(),
        }
    }
}

impl Target {
    fn kind(&self) -> &'static str {
        match self {
            Target::Stdio { .. } => "stdio",
            Target::Http { .. } => "HTTP",
        }
    }
}

/// Which tools are exposed, and how they are named.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolOptions {
    pub(crate) prefix: String,
    allow: Option<BTreeSet<String>>,
    deny: BTreeSet<String>,
}

impl ToolOptions {
    pub(crate) fn exposes(&self, remote_name: &str) -> bool {
        !self.deny.contains(remote_name)
            && self
                .allow
                .as_ref()
                .is_none_or(|allow| allow.contains(remote_name))
    }
}

/// A client for one Model Context Protocol server, whose tools become Catena
/// [`Tool`]s. Made with [`McpClient::stdio`] or [`McpClient::http`].
///
/// Cloning is cheap and shares the connection. The connection (and for stdio the child
/// process) lives until the client and every tool listed from it are dropped; the child
/// process is then killed.
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    service: RunningService<RoleClient, ClientConfig>,
    pub(crate) server: String,
    /// The HTTP URL with its query, which transport errors may quote; shown as `server`.
    full_url: Option<String>,
    pub(crate) tools: ToolOptions,
    pub(crate) call_timeout: Duration,
}

impl fmt::Debug for McpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpClient")
            .field("server", &self.inner.server)
            .field("tools", &self.inner.tools)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// What the server said about itself in the `initialize` handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct McpServerInfo {
    /// The server's name, when it gave one.
    pub name: Option<String>,
    /// The server's version, when it gave one.
    pub version: Option<String>,
    /// The protocol version the two sides agreed on, such as `2025-06-18`.
    pub protocol_version: String,
    /// How to use the server, written for a model; worth adding to a system prompt.
    pub instructions: Option<String>,
}

impl McpClient {
    /// A builder for a server run as a child process that speaks MCP on its stdin and
    /// stdout, such as `npx -y @modelcontextprotocol/server-everything`. Add arguments
    /// with [`McpClientBuilder::arg`].
    ///
    /// The child starts with a cleared environment: only the variables named in
    /// [`McpClientBuilder::DEFAULT_INHERITED_ENV`] (`PATH`, `HOME`, `LANG`, …) are passed on
    /// from this process, plus those named with [`McpClientBuilder::inherit_env`] and set
    /// with [`McpClientBuilder::env`], so API keys in this process's environment do not
    /// reach a third-party server. It inherits this process's stderr, so the server's logs
    /// show up with ours.
    pub fn stdio(program: impl Into<OsString>) -> McpClientBuilder {
        McpClientBuilder::new(Target::Stdio {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            inherit: EnvInherit::AllowList,
            inherit_names: Vec::new(),
            current_dir: None,
        })
    }

    /// A builder for a server reached over streamable HTTP at `url` (`http` or `https`),
    /// such as `https://mcp.example.com/mcp`. Put credentials in
    /// [`McpClientBuilder::bearer_token`] or [`McpClientBuilder::header`], not in the URL.
    pub fn http(url: impl Into<String>) -> McpClientBuilder {
        McpClientBuilder::new(Target::Http {
            url: url.into(),
            bearer: None,
            headers: Vec::new(),
        })
    }

    /// The server's tools, as Catena tools: names (with the prefix, if one was set),
    /// descriptions and JSON-schema parameters come from the server, and only the tools
    /// the filters admit are included. Follows `tools/list` pagination to the last page.
    ///
    /// Each call asks the server again, unless the server said its last list stays fresh
    /// for a while (`ttlMs`), so a server whose tools changed can be listed anew.
    ///
    /// # Errors
    /// [`McpError::Timeout`] when a page takes longer than the call timeout,
    /// [`McpError::Closed`] when the server is gone, [`McpError::Protocol`] when the server
    /// lists a name twice or its cursor never ends, and the other [`McpError`] variants for
    /// transport and server errors.
    pub async fn list_tools(&self) -> Result<Vec<Arc<dyn Tool>>, McpError> {
        Ok(self
            .tools()
            .await?
            .into_iter()
            .map(|tool| Arc::new(tool) as Arc<dyn Tool>)
            .collect())
    }

    /// Like [`McpClient::list_tools`], with the concrete [`McpTool`] type.
    ///
    /// # Errors
    /// As [`McpClient::list_tools`].
    pub async fn tools(&self) -> Result<Vec<McpTool>, McpError> {
        let mut tools = Vec::new();
        let mut names = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut cursors = HashSet::new();
        for _ in 0..MAX_TOOL_PAGES {
            let params = cursor
                .take()
                .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let page = self
                .inner
                .request(
                    || "tools/list".to_string(),
                    self.inner.call_timeout,
                    self.inner.service.peer().list_tools(params),
                )
                .await?;
            for tool in page.tools {
                if !self.inner.tools.exposes(&tool.name) {
                    continue;
                }
                let tool = McpTool::new(self.inner.clone(), tool);
                if !names.insert(tool.name().to_string()) {
                    return Err(McpError::Protocol {
                        server: self.inner.server.clone(),
                        message: format!("tool `{}` is listed twice", tool.name()),
                    });
                }
                tools.push(tool);
            }
            match page.next_cursor {
                None => return Ok(tools),
                Some(next) => {
                    if !cursors.insert(next.clone()) {
                        return Err(McpError::Protocol {
                            server: self.inner.server.clone(),
                            message: "tools/list returned the same cursor twice".to_string(),
                        });
                    }
                    cursor = Some(next);
                }
            }
        }
        Err(McpError::Protocol {
            server: self.inner.server.clone(),
            message: format!("tools/list did not end within {MAX_TOOL_PAGES} pages"),
        })
    }

    /// The server's name, version and instructions from the handshake.
    pub fn server_info(&self) -> Option<McpServerInfo> {
        self.inner
            .service
            .peer()
            .peer_info()
            .map(|info| McpServerInfo {
                name: info.server_info.as_ref().map(|i| i.name.clone()),
                version: info.server_info.as_ref().map(|i| i.version.clone()),
                protocol_version: info.protocol_version.to_string(),
                instructions: info.instructions.clone(),
            })
    }

    /// The server as it appears in error messages: the program for stdio, the URL without
    /// its query for HTTP.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Whether the connection is gone (the server exited or closed the session).
    pub fn is_closed(&self) -> bool {
        self.inner.service.is_closed() || self.inner.service.peer().is_transport_closed()
    }
}

impl Inner {
    pub(crate) fn service_peer(&self) -> &rmcp::Peer<RoleClient> {
        self.service.peer()
    }

    /// Runs one request with a timeout; dropping it on timeout sends
    /// `notifications/cancelled` to the server.
    pub(crate) async fn request<T>(
        &self,
        operation: impl FnOnce() -> String,
        timeout: Duration,
        request: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, McpError> {
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.service_error(operation(), e)),
            Err(_) => Err(McpError::Timeout {
                server: self.server.clone(),
                operation: operation(),
                after: timeout,
            }),
        }
    }

    /// `message` with the full URL (whose query may carry a secret) replaced by the label.
    fn scrub(&self, message: String) -> String {
        scrub(message, self.full_url.as_deref(), &self.server)
    }

    fn service_error(&self, operation: String, e: ServiceError) -> McpError {
        let server = self.server.clone();
        match e {
            ServiceError::McpError(data) => McpError::Server {
                server,
                operation,
                code: data.code.0,
                message: data.message.into_owned(),
            },
            ServiceError::TransportClosed | ServiceError::Cancelled { .. } => {
                McpError::Closed { server, operation }
            }
            ServiceError::Timeout { timeout } => McpError::Timeout {
                server,
                operation,
                after: timeout,
            },
            ServiceError::UnexpectedResponse => McpError::Protocol {
                server,
                message: format!("unexpected answer to {operation}"),
            },
            ref e @ ServiceError::TransportSend(_) if e.is_authorization_required() => {
                McpError::Auth {
                    server,
                    message: self.scrub(e.to_string()),
                }
            }
            ServiceError::TransportSend(e) => {
                let message = self.scrub(error_chain(e.error.as_ref()));
                if is_auth_status(&message) {
                    McpError::Auth { server, message }
                } else {
                    McpError::Transport {
                        server,
                        operation,
                        message,
                    }
                }
            }
            other => McpError::Transport {
                server,
                operation,
                message: self.scrub(other.to_string()),
            },
        }
    }
}

/// An error and its sources, joined with `: `. reqwest keeps the useful part (connection
/// refused, a TLS failure) in its sources, which rmcp's HTTP error does not chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = String::new();
    let mut next = Some(e);
    while let Some(current) = next {
        let (text, source) = match current.downcast_ref::<HttpError>() {
            Some(StreamableHttpError::Client(client)) => {
                (client.to_string(), std::error::Error::source(client))
            }
            _ => (current.to_string(), current.source()),
        };
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        next = source;
    }
    message
}

fn scrub(message: String, full_url: Option<&str>, label: &str) -> String {
    match full_url {
        Some(url) => message.replace(url, label),
        None => message,
    }
}

/// rmcp reports a 401 or 403 that carries no `WWW-Authenticate` challenge as an
/// unexpected response whose text starts with the status.
fn is_auth_status(message: &str) -> bool {
    message.contains("HTTP 401") || message.contains("HTTP 403")
}

/// Configures and connects an [`McpClient`]; made by [`McpClient::stdio`] or
/// [`McpClient::http`].
///
/// Setters that do not apply to the transport (an HTTP header for a stdio server, an
/// argument for an HTTP server) are reported by [`McpClientBuilder::connect`].
#[derive(Debug, Clone)]
#[must_use]
pub struct McpClientBuilder {
    target: Target,
    tools: ToolOptions,
    call_timeout: Duration,
    connect_timeout: Duration,
    error: Option<String>,
}

impl McpClientBuilder {
    /// The variables a stdio server process inherits from this process by default: what
    /// programs need to run (search path, home, user, locale, temporary directory,
    /// terminal), and no credentials. The same list as the MCP TypeScript SDK's
    /// `getDefaultEnvironment`, plus the locale and temporary-directory variables.
    #[cfg(not(windows))]
    pub const DEFAULT_INHERITED_ENV: &'static [&'static str] = &[
        "HOME",
        "LOGNAME",
        "PATH",
        "SHELL",
        "TERM",
        "USER",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TMPDIR",
        "TZ",
    ];
    /// The variables a stdio server process inherits from this process by default: what
    /// programs need to run (search path, system and profile directories, temporary
    /// directory), and no credentials. The same list as the MCP TypeScript SDK's
    /// `getDefaultEnvironment`, plus the temporary-directory and executable-extension
    /// variables.
    #[cfg(windows)]
    pub const DEFAULT_INHERITED_ENV: &'static [&'static str] = &[
        "APPDATA",
        "HOMEDRIVE",
        "HOMEPATH",
        "LOCALAPPDATA",
        "PATH",
        "PATHEXT",
        "PROCESSOR_ARCHITECTURE",
        "SYSTEMDRIVE",
        "SYSTEMROOT",
        "TEMP",
        "TMP",
        "USERNAME",
        "USERPROFILE",
        "PROGRAMFILES",
        "COMSPEC",
        "WINDIR",
    ];

    fn new(target: Target) -> Self {
        McpClientBuilder {
            target,
            tools: ToolOptions::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            error: None,
        }
    }

    fn defer(&mut self, setter: &str, applies_to: &str) {
        if self.error.is_none() {
            self.error = Some(format!(
                "`{setter}` applies to {applies_to} servers, and this one is reached over {}",
                self.target.kind()
            ));
        }
    }

    /// Adds an argument to the server's command line (stdio only). Default: none.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        match &mut self.target {
            Target::Stdio { args, .. } => args.push(arg.into()),
            Target::Http { .. } => self.defer("arg", "stdio"),
        }
        self
    }

    /// Adds arguments to the server's command line (stdio only). Default: none.
    pub fn args<I, S>(mut self, new_args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        match &mut self.target {
            Target::Stdio { args, .. } => args.extend(new_args.into_iter().map(Into::into)),
            Target::Http { .. } => self.defer("args", "stdio"),
        }
        self
    }

    /// Sets an environment variable for the server process (stdio only); the place for
    /// the server's secrets, since values are left out of `Debug` output (arguments are
    /// shown). Default: nothing is added to what is inherited (see
    /// [`McpClientBuilder::inherit_env`]).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        match &mut self.target {
            Target::Stdio { env, .. } => env.push((key.into(), value.into())),
            Target::Http { .. } => self.defer("env", "stdio"),
        }
        self
    }

    /// Passes this process's value of `key` (when set) to the server process, on top of
    /// [`DEFAULT_INHERITED_ENV`](Self::DEFAULT_INHERITED_ENV) (stdio only): for what a
    /// server needs from the environment, such as `NODE_OPTIONS` or a proxy setting.
    /// Default: only the default list is passed on.
    pub fn inherit_env(mut self, key: impl Into<OsString>) -> Self {
        let key = key.into();
        if !is_env_name(&key) && self.error.is_none() {
            self.error = Some(format!(
                "`inherit_env`: {key:?} is not an environment variable name"
            ));
        }
        match &mut self.target {
            Target::Stdio { inherit_names, .. } => inherit_names.push(key),
            Target::Http { .. } => self.defer("inherit_env", "stdio"),
        }
        self
    }

    /// Starts the server process with an empty environment plus what
    /// [`McpClientBuilder::env`] sets and [`McpClientBuilder::inherit_env`] names: not even
    /// [`DEFAULT_INHERITED_ENV`](Self::DEFAULT_INHERITED_ENV) is passed on (stdio only).
    /// Default: the default list is passed on.
    pub fn env_clear(mut self) -> Self {
        match &mut self.target {
            Target::Stdio { inherit, .. } => *inherit = EnvInherit::Nothing,
            Target::Http { .. } => self.defer("env_clear", "stdio"),
        }
        self
    }

    /// Lets the server process inherit this process's **whole** environment, secrets
    /// included (stdio only). Only for a server you trust with every credential this
    /// process holds; prefer [`McpClientBuilder::inherit_env`]. Default: only
    /// [`DEFAULT_INHERITED_ENV`](Self::DEFAULT_INHERITED_ENV) is inherited.
    pub fn inherit_all_env(mut self) -> Self {
        match &mut self.target {
            Target::Stdio { inherit, .. } => *inherit = EnvInherit::All,
            Target::Http { .. } => self.defer("inherit_all_env", "stdio"),
        }
        self
    }

    /// The server process's working directory (stdio only). Default: this process's.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        match &mut self.target {
            Target::Stdio { current_dir, .. } => *current_dir = Some(dir.into()),
            Target::Http { .. } => self.defer("current_dir", "stdio"),
        }
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (HTTP only). The token
    /// never appears in `Debug` output or error messages. Default: no authorization.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        match &mut self.target {
            Target::Http { bearer, .. } => *bearer = Some(Secret(token.into())),
            Target::Stdio { .. } => self.defer("bearer_token", "HTTP"),
        }
        self
    }

    /// Sends a header with every request, such as an API key header (HTTP only). Values
    /// are treated as secrets: redacted in `Debug` and marked sensitive. The headers the
    /// protocol sets itself (`Authorization`, `Accept`, `Content-Type`, the session and
    /// protocol headers) cannot be set here. Default: none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.target {
            Target::Http { headers, .. } => headers.push((name.into(), Secret(value.into()))),
            Target::Stdio { .. } => self.defer("header", "HTTP"),
        }
        self
    }

    /// Puts `prefix` in front of every tool name, so tools of two servers cannot clash:
    /// with prefix `github_`, the server's `search` becomes `github_search`. Calls send
    /// the server's own name. Default: no prefix.
    pub fn tool_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tools.prefix = prefix.into();
        self
    }

    /// Exposes only the tools with these names (the server's names, without the prefix).
    /// Calling it again adds to the list. Default: every tool is exposed.
    pub fn allow_tools<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools
            .allow
            .get_or_insert_with(BTreeSet::new)
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Hides the tools with these names (the server's names, without the prefix); applied
    /// after [`McpClientBuilder::allow_tools`]. Default: none hidden.
    pub fn deny_tools<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools.deny.extend(names.into_iter().map(Into::into));
        self
    }

    /// How long one request (a tool call, one page of the tools list) may take; the
    /// request is then cancelled and the call fails with [`McpError::Timeout`], which a
    /// tool reports as [`catena_core::ToolError::Execution`]. Default:
    /// [`DEFAULT_CALL_TIMEOUT`] (60 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long starting the server and the `initialize` handshake may take (and, for
    /// HTTP, establishing each TCP connection). Default: [`DEFAULT_CONNECT_TIMEOUT`] (30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Starts or reaches the server and runs the MCP `initialize` handshake.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] for settings that do not fit (see the setters),
    /// [`McpError::Spawn`] when the program cannot be started, [`McpError::Auth`] when
    /// an HTTP server refuses the credentials, [`McpError::Timeout`] when the handshake
    /// takes longer than the connect timeout, and [`McpError::Connect`] when it fails.
    pub async fn connect(self) -> Result<McpClient, McpError> {
        if let Some(message) = self.error {
            return Err(McpError::InvalidConfig(message));
        }
        if self.call_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(McpError::InvalidConfig(
                "timeouts must be longer than zero".to_string(),
            ));
        }
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("catena", env!("CARGO_PKG_VERSION")),
        );
        let mut full_url = None;
        let (server, connecting) = match self.target {
            Target::Stdio {
                program,
                args,
                env,
                inherit,
                inherit_names,
                current_dir,
            } => {
                if program.is_empty() {
                    return Err(McpError::InvalidConfig(
                        "the stdio command is empty".to_string(),
                    ));
                }
                let label = program.to_string_lossy().into_owned();
                let mut command = tokio::process::Command::new(&program);
                command.args(args);
                if inherit != EnvInherit::All {
                    command.env_clear();
                    let defaults = match inherit {
                        EnvInherit::AllowList => Self::DEFAULT_INHERITED_ENV,
                        _ => &[],
                    };
                    let names = defaults.iter().map(OsString::from).chain(inherit_names);
                    for name in names.filter(|n| is_env_name(n)) {
                        // Values that are not valid Unicode are passed on as they are.
                        if let Some(value) = std::env::var_os(&name) {
                            command.env(name, value);
                        }
                    }
                }
                command.envs(env);
                if let Some(dir) = current_dir {
                    command.current_dir(dir);
                }
                // rmcp kills the child when the connection ends; this covers a runtime that
                // is shutting down and can no longer run that task.
                command.kill_on_drop(true);
                let (process, _stderr) = TokioChildProcess::builder(command)
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| McpError::Spawn {
                        program: label.clone(),
                        message: e.to_string(),
                    })?;
                let server = format!("`{label}` (stdio)");
                (server, Box::pin(info.serve(process)) as Connecting)
            }
            Target::Http {
                url,
                bearer,
                headers,
            } => {
                let (uri, server) = check_url(&url)?;
                if uri != server {
                    full_url = Some(uri.clone());
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(uri);
                if let Some(Secret(token)) = bearer {
                    config = config.auth_header(token);
                }
                config = config.custom_headers(header_map(headers)?);
                let client = super::http::client(self.connect_timeout).map_err(|message| {
                    McpError::Connect {
                        server: server.clone(),
                        message,
                    }
                })?;
                let transport = StreamableHttpClientTransport::with_client(client, config);
                (server, Box::pin(info.serve(transport)) as Connecting)
            }
        };
        let service = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => return Err(initialize_error(server, full_url.as_deref(), e)),
            Err(_) => {
                return Err(McpError::Timeout {
                    server,
                    operation: "initialize".to_string(),
                    after: self.connect_timeout,
                })
            }
        };
        Ok(McpClient {
            inner: Arc::new(Inner {
                service,
                server,
                full_url,
                tools: self.tools,
                call_timeout: self.call_timeout,
            }),
        })
    }
}

/// Checks an HTTP server URL; returns it and its label (no user info, query or fragment).
fn check_url(url: &str) -> Result<(String, String), McpError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| McpError::InvalidConfig(format!("the server URL does not parse: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(McpError::InvalidConfig(format!(
            "the server URL must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(McpError::InvalidConfig(
            "the server URL carries credentials; use `bearer_token` or `header` instead"
                .to_string(),
        ));
    }
    let mut label = parsed.clone();
    label.set_query(None);
    label.set_fragment(None);
    Ok((parsed.to_string(), label.to_string()))
}

fn header_map(
    headers: Vec<(String, Secret)>,
) -> Result<HashMap<HeaderName, HeaderValue>, McpError> {
    let mut map = HashMap::new();
    for (name, Secret(value)) in headers {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| McpError::InvalidConfig(format!("`{name}` is not a valid header name")))?;
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            McpError::InvalidConfig(format!("the value of header `{name}` is not valid"))
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

fn initialize_error(server: String, full_url: Option<&str>, e: ClientInitializeError) -> McpError {
    let message = match &e {
        ClientInitializeError::TransportError { error, context } => {
            format!("{}, when {context}", error_chain(error.error.as_ref()))
        }
        ClientInitializeError::ConnectionClosed(m) => {
            format!("the connection closed during the handshake (did the server exit?): {m}")
        }
        other => other.to_string(),
    };
    let message = scrub(message, full_url, &server);
    if e.auth_challenge().is_some() || is_auth_status(&message) {
        McpError::Auth { server, message }
    } else {
        McpError::Connect { server, message }
    }
}
