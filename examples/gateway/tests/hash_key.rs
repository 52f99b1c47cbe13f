//! `gateway hash-key` with the real binary: the key comes from stdin, and a key on the
//! command line (visible in `ps` and the shell history) is refused without being repeated.
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
