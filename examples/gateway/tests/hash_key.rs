//! `gateway hash-key` with the real binary: the key comes from stdin, and a key on the
//! command line (visible in `ps` and the shell history) is refused without being repeated.
//! And the one-time key of `gateway serve` without configured keys never reaches a log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use example_gateway::auth::hash_key;

fn gateway(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("CATENA_GATEWAY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit before reading (a refused argument): a closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_key_is_read_from_stdin() {
    let expected = format!("{}\n", hash_key("my s3cret key"));
    for input in [
        &b"my s3cret key"[..],
        b"my s3cret key\n",
        b"my s3cret key\r\n",
    ] {
        let out = gateway(&["hash-key"], input);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected, "{:?}", text(input));
    }
}

#[test]
fn a_key_on_the_command_line_is_refused_and_not_repeated() {
    let out = gateway(&["hash-key", "argv-s3cret-0123"], b"");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stdin"), "{stderr}");
    assert!(!stderr.contains("argv-s3cret"), "{stderr}");
    assert!(!stderr.contains(&hash_key("argv-s3cret-0123")), "{stderr}");
}

#[test]
fn empty_multi_line_and_oversized_input_are_errors() {
    let long = vec![b'k'; 5000];
    for input in [&b""[..], b"\n", b"key-one\nkey-two\n", &long] {
        let out = gateway(&["hash-key"], input);
        assert!(!out.status.success(), "{:?}", text(input));
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("hash-key"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[cfg(unix)]
#[test]
fn the_one_time_key_goes_to_a_private_file_never_to_the_log() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // stderr is a pipe here, as it is under a process manager that keeps the logs.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("serve")
        .env("CATENA_DATA_DIR", &data)
        .env("CATENA_GATEWAY_ADDR", "127.0.0.1:0")
        .env("CANDLE_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .env_remove("CATENA_API_KEY_SHA256")
        .env_remove("CATENA_GATEWAY_CONFIG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("OLLAMA_HOST")
        .env_remove("QDRANT_URL")
        .env_remove("DATABASE_URL")
        .env_remove("CATENA_REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    let mut base = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("listening on http://") {
            let url = &line[at + "listening on ".len()..];
            base = Some(url[..url.find(char::is_whitespace).unwrap_or(url.len())].to_owned());
            log.push(line);
            break;
        }
        log.push(line);
    }
    let base = base.unwrap_or_else(|| panic!("the gateway did not start:\n{}", log.join("\n")));
    let file = data.join("one-time-api-key");
    let key = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(key.len() >= 32, "a real key: {key:?}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let log = log.join("\n");
    assert!(!log.contains(&key), "the key reached the log:\n{log}");
    assert!(
        log.contains("one-time-api-key"),
        "the log says where it is:\n{log}"
    );
    // The key in the file is the one the gateway accepts.
    let status = |key: &str| {
        use std::io::Read;
        let addr = base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let body = r#"{"question":""}"#;
        write!(
            stream,
            "POST /v1/query HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        status(&key),
        "422",
        "an authenticated request, refused for its empty question"
    );
    assert_eq!(status("not-the-key"), "401");
    let _ = child.kill();
    let _ = child.wait();
}
