//! The chat page (`GET /`) end to end in headless Chromium: the gateway runs in-process on
//! loopback with a scripted model, and `examples/gateway/e2e/chat.mjs` (playwright-core) types a
//! key and a question into the page, clicks Ask and reports what the page shows.
//!
//! Chromium (Debian's `chromium`) and playwright-core come from `scripts/browser.sh`, which this
//! test runs unless `CATENA_CHROMIUM` and `CATENA_PLAYWRIGHT_DIR` are already set. It needs `node`
//! (20 or later). `CATENA_SKIP_BROWSER=1` skips the test where no browser can be installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ChatModel, ChatResponse, Message};
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use serde_json::{json, Value};
use tokio::process::Command;

mod support;

use support::Running;

const KEY: &str = "browser-test-key";
const SOURCE: &str = "handbook/ownership.md";
/// Streamed 4 characters per chunk by the scripted model; it has leading spaces, a line break,
/// markup that must stay text, and characters outside ASCII.
const ANSWER: &str = "Rust checks ownership at compile time — so it needs no garbage collector.\n\
                      Borrowing rules keep <b>references</b> valid & data races out.";

fn config() -> Config {
    let mut c = Config::default();
    c.auth.api_key_sha256 = vec![hash_key(KEY)];
    c.limits.requests_per_minute = 600;
    c.limits.burst = 100;
    c
}

async fn start_with(config: Config, chat: Arc<dyn ChatModel>) -> Running {
    support::start(config, support::backends(chat, 256)).await
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where Chromium and playwright-core are: from the environment, or installed by
/// `scripts/browser.sh` (whose export lines bash evaluates, so quoting round-trips).
async fn browser_env() -> (String, String) {
    if let (Ok(chromium), Ok(driver)) = (
        std::env::var("CATENA_CHROMIUM"),
        std::env::var("CATENA_PLAYWRIGHT_DIR"),
    ) {
        return (chromium, driver);
    }
    let run = Command::new("bash")
        .arg("-c")
        .arg(
            r#"set -e; exports="$(bash scripts/browser.sh)"; eval "$exports"; printf '%s\n%s\n' "$CATENA_CHROMIUM" "$CATENA_PLAYWRIGHT_DIR""#,
        )
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .expect("scripts/browser.sh finishes in 15 minutes")
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/browser.sh failed ({}); set CATENA_SKIP_BROWSER=1 to skip this test",
        out.status
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// Runs `chat.mjs` against the gateway and parses the JSON it prints.
async fn drive_page(base: &str, question: &str, bad_key: &str) -> Value {
    let (chromium, driver) = browser_env().await;
    let root = workspace_root();
    let run = Command::new("node")
        .arg(root.join("examples/gateway/e2e/chat.mjs"))
        .args(["--url", base, "--question", question, "--bad-key", bad_key])
        .args(["--timeout-ms", "60000"])
        .env("CATENA_API_KEY", KEY)
        .env("CATENA_CHROMIUM", chromium)
        .env("CATENA_PLAYWRIGHT_DIR", driver)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("chat.mjs finishes in 3 minutes")
        .expect("node runs (Node.js 20 or later is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chat.mjs failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_streams_the_answer_and_lists_sources_in_chromium() {
    if std::env::var_os("CATENA_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("CATENA_SKIP_BROWSER=1: skipping the headless Chromium test");
        return;
    }
    let model = ScriptedChatModel::new()
        .with_responder(|_| Ok(ChatResponse::new(Message::assistant(ANSWER))));
    let g = start_with(config(), Arc::new(model)).await;

    let res = {
        example_gateway::install_crypto_provider();
        reqwest::Client::new()
    }
        .post(format!("{}/v1/documents", g.base))
        .bearer_auth(KEY)
        .json(&json!({ "documents": [{
            "source": SOURCE,
            "content": "Rust checks ownership and borrowing at compile time; it has no garbage collector."
        }]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    let page = drive_page(
        &g.base,
        "Does Rust need a garbage collector?",
        "not-the-key",
    )
    .await;

    // The answer, exactly as the model streamed it, in pieces, as text (no markup).
    assert_eq!(page["answer"], ANSWER, "{page:#}");
    assert!(
        page["answer_updates"].as_u64().unwrap() > 1,
        "the answer arrived in several updates: {page:#}"
    );
    assert_eq!(page["status"], "", "{page:#}");
    let sources: Vec<&str> = page["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(!sources.is_empty(), "{page:#}");
    assert!(sources.iter().all(|s| *s == SOURCE), "{page:#}");
    assert!(
        page["source_texts"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{SOURCE} (score ")),
        "{page:#}"
    );
    assert_eq!(page["errors"], json!([]), "{page:#}");

    // A wrong key: the page shows the 401 problem and nothing else.
    let bad = &page["bad_key"];
    let status = bad["status"].as_str().unwrap();
    assert!(status.starts_with("unauthorized"), "{bad:#}");
    assert_eq!(bad["answer"], "", "{bad:#}");
    assert_eq!(bad["sources"], json!([]), "{bad:#}");

    g.shutdown().await;
}
