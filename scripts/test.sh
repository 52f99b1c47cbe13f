#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test and doctest, every example and bench built.
# Needs only the Rust toolchain (cargo, rustfmt, clippy) and crates.io; runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings denied)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo test (unit, integration and doc tests)"
cargo test --locked --workspace --all-features

step "build every example"
cargo build --locked --workspace --examples --bins

step "run the main example end to end"
cargo run --locked -q -p example-quickstart -- "How does the recursive splitter choose where to cut?" >/dev/null

printf '\nAll checks passed.\n'
