//! The metrics recorder's memory: histogram samples recorded while nobody scrapes
//! `GET /metrics` must not accumulate. Measured as the growth of this process's resident set
//! (Linux: `/proc/self/status`); a test binary of its own, with one test, so no other test
//! allocates meanwhile.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use catena_core::test_utils::ScriptedChatModel;
use example_gateway::auth::{hash_key, Scope};
use example_gateway::config::{Config, KeyConfig};

const ADMIN_KEY: &str = "metrics-admin-key";

/// This process's resident set, in bytes.
fn resident() -> usize {
    catena_core::test_utils::resident_bytes().expect("/proc/self/status")
}

#[tokio::test(flavor = "current_thread")]
async fn histogram_samples_do_not_pile_up_while_nobody_scrapes() {
    let mut config = Config::default();
    config.auth.keys = vec![KeyConfig::new(hash_key(ADMIN_KEY), "ops").scopes([Scope::Admin])];
    let chat = Arc::new(ScriptedChatModel::echo());
    let gateway = support::start(config, support::backends(chat, 8)).await;
    // One real request, so the request-latency histogram exists as the middleware records it.
    let health = gateway.get("/healthz").send().await.unwrap();
    assert!(health.status().is_success());
    let labels = [
        ("route", "/healthz".to_owned()),
        ("method", "GET".to_owned()),
        ("status", "200".to_owned()),
    ];
    let histogram = metrics::histogram!("http_request_duration_seconds", &labels);
    // Six seconds of a busy gateway's latency samples (the middleware records one a
    // request), 500,000 a second: 24 MB were they all kept. The first second's may stay
    // allocated (freed memory is reused, not returned); the next five must not add to it.
    let batch = || {
        for i in 0..500_000u32 {
            histogram.record(f64::from(i % 1000) * 1e-4);
        }
    };
    batch();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = resident();
    for _ in 0..5 {
        batch();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let grown = resident().saturating_sub(before);
    println!(
        "2,500,000 more latency samples grew the process by {:.1} MB",
        grown as f64 / 1e6
    );
    assert!(
        grown < 8_000_000,
        "the samples are kept: the process grew by {grown} bytes"
    );
    // The samples are not lost: they are in the buckets a scrape renders.
    let text = gateway
        .get("/metrics")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = text
        .lines()
        .find(|l| l.starts_with("http_request_duration_seconds_count") && l.contains("/healthz"))
        .expect("the latency histogram is rendered");
    let count: f64 = count.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3_000_000.0, "{count} samples rendered");
    gateway.shutdown().await;
}
