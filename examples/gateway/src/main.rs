//! The gateway binary.
//!
//! ```text
//! gateway [serve] [--config FILE]      serve the HTTP API (default 127.0.0.1:8080)
//! gateway demo [--corpus DIR] [QUESTION...]
//!                                      start on a free loopback port, ingest a folder of
//!                                      Markdown (default: this repository's docs/), ask one
//!                                      question through the HTTP API, print answer and sources
//! gateway hash-key < KEY_FILE          print the SHA-256 to configure for an API key, read
//!                                      from stdin (a key on the command line is refused: it
//!                                      would show in `ps` and the shell history)
//! ```
//!
//! Configuration: `--config FILE` or `CATENA_GATEWAY_CONFIG` (TOML), then the environment
//! (see `example_gateway::config` and `example_gateway::Backends`). With no API key hash
//! configured, `serve` makes a random key for the run: shown on the terminal, or, when stderr
//! is not one (a log), written to `<data_dir>/one-time-api-key` (mode 0600) instead.

use example_gateway::auth::{generate_key, hash_key};
use example_gateway::{config::Config, demo::Demo, shutdown_signal};
use example_gateway::{Backends, Gateway, GatewayError};

#[tokio::main]
async fn main() {
    // Logs to stderr; spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _tracing = catena_agents::otel::init_tracing("catena-gateway")
        .unwrap_or_else(|e| fail(&format!("tracing: {e}")));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve(args.get(1..).unwrap_or_default()).await,
        Some("demo") => demo(Demo::from_args(&args[1..])).await,
        Some("hash-key") => hash_key_command(&args[1..]),
        Some(flag) if flag.starts_with("--") => serve(&args).await,
        Some(other) => Err(GatewayError::Config(format!(
            "unknown command {other:?} (serve, demo, hash-key)"
        ))),
    };
    result.unwrap_or_else(|e| fail(&e.to_string()));
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// The longest key `hash-key` reads; more is a mistake (a file piped in by accident).
const MAX_KEY_BYTES: u64 = 4096;

/// `gateway hash-key`: the SHA-256 of the key on stdin.
///
/// The key is never taken from the command line, where every user of the machine can read it
/// (`ps`, `/proc/PID/cmdline`) and the shell history keeps it; the refusal does not repeat it.
fn hash_key_command(args: &[String]) -> Result<(), GatewayError> {
    if !args.is_empty() {
        return Err(GatewayError::Config(
            "gateway hash-key reads the key from stdin, not from the command line (where `ps` \
             and the shell history would show it): printf %s \"$KEY\" | gateway hash-key"
                .into(),
        ));
    }
    use std::io::{BufRead, IsTerminal, Read};
    let stdin = std::io::stdin();
    let mut input = String::new();
    if stdin.is_terminal() {
        eprint!("API key (one line): ");
        stdin.lock().take(MAX_KEY_BYTES + 1).read_line(&mut input)?;
    } else {
        stdin
            .lock()
            .take(MAX_KEY_BYTES + 1)
            .read_to_string(&mut input)?;
    }
    println!("{}", hash_key(key_from_input(&input)?));
    Ok(())
}

/// The key in what was read: one line, its line ending removed, nothing else trimmed.
fn key_from_input(input: &str) -> Result<&str, GatewayError> {
    let bad = |why: &str| GatewayError::Config(format!("gateway hash-key: {why}"));
    if input.len() as u64 > MAX_KEY_BYTES {
        return Err(bad(&format!(
            "the key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    let key = input
        .strip_suffix('\n')
        .map_or(input, |k| k.strip_suffix('\r').unwrap_or(k));
    if key.contains(['\n', '\r']) {
        return Err(bad("stdin holds more than one line; give one key per run"));
    }
    if key.is_empty() {
        return Err(bad("no key on stdin"));
    }
    Ok(key)
}

/// `gateway serve`: the HTTP API until Ctrl-C or SIGTERM.
async fn serve(args: &[String]) -> Result<(), GatewayError> {
    let mut config = Config::from_args(args)?;
    if config.auth.api_key_sha256.is_empty() && config.auth.keys.is_empty() {
        let key = generate_key()?;
        hand_over_one_time_key(&config, &key)?;
        config.auth.api_key_sha256.push(hash_key(&key));
    }
    let backends = Backends::from_config(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(config, backends)?;
    tracing::info!(%addr, backends = gateway.description(), "gateway listening on http://{addr}");
    let served = gateway.serve(listener, shutdown_signal()).await;
    example_gateway::flush_otlp();
    served
}

/// Gives the operator the key a run without configured keys accepts: on the terminal when
/// stderr is one, otherwise in `<data_dir>/one-time-api-key` (mode 0600, replaced at each
/// run) — never in a log, which is where a redirected stderr goes.
fn hand_over_one_time_key(config: &Config, key: &str) -> Result<(), GatewayError> {
    use std::io::{IsTerminal, Write};
    if std::io::stderr().is_terminal() {
        eprintln!(
            "no API key configured (auth.api_key_sha256 / CATENA_API_KEY_SHA256): this run accepts\n\n    Authorization: Bearer {key}\n"
        );
        return Ok(());
    }
    let path = config.data_dir.join("one-time-api-key");
    let failed = |e: std::io::Error| {
        GatewayError::Config(format!(
            "cannot write the one-time key to {}: {e}",
            path.display()
        ))
    };
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(&config.data_dir).map_err(failed)?;
    // A new file each run (an old one, or a link planted in its place, is removed first).
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(failed)?;
    writeln!(file, "{key}").map_err(failed)?;
    file.sync_all().map_err(failed)?;
    tracing::warn!(
        path = %path.display(),
        "no API key configured (auth.api_key_sha256 / CATENA_API_KEY_SHA256): this run accepts the key in this file (mode 0600)"
    );
    Ok(())
}

/// `gateway demo`: a gateway on a loopback port for this run, and the demo client against it.
async fn demo(demo: Demo) -> Result<(), GatewayError> {
    let mut config = Config::from_args(&[])?;
    let key = demo.configure(&mut config)?;
    let backends = Backends::from_config(&config).await?;
    eprintln!("gateway demo: {}", backends.description);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let server = tokio::spawn(Gateway::new(config, backends)?.serve(listener, stopped));
    println!("{}", demo.run(&base, &key).await?);
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
