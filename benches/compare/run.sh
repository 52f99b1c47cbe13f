#!/usr/bin/env bash
# Catena side by side with LangChain (Python, JS), numpy and the Rust crates text-splitter and
# tiktoken-rs on the same inputs; prints a Markdown table of the results. See README.md here.
#
#   bash benches/compare/run.sh [--quick]
#
# Everything it installs or writes goes under .catena/bench/ (git-ignored): the inputs (data/), a
# Python venv (venv/), LangChain.js (js/), the Rust peers' build (rust-target/), the logs (logs/)
# and the results (results.jsonl, results.md). A peer that cannot be installed (offline, a missing
# tool) is skipped with a message; a failing Catena step makes the exit status 1 at the end.
set -euo pipefail
exec </dev/null

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/benches/compare
BENCH=$ROOT/.catena/bench
DATA=$BENCH/data
LOGS=$BENCH/logs
RESULTS=$BENCH/results.jsonl
SKIPPED=$BENCH/skipped.txt
cd "$ROOT"
mkdir -p "$DATA" "$LOGS"
: >"$RESULTS"
: >"$SKIPPED"
CATENA_FAILED=0

log() { echo "[compare] $*" >&2; }
skip() { # workload impl reason
  echo "SKIP $1 $2: $3" >>"$SKIPPED"
  log "SKIP $1 $2: $3"
}
sha() { sha256sum "$@" | sha256sum | cut -c1-64; }

# Peers are measured as shipped: no tracing, no telemetry, no network.
export LANGSMITH_TRACING=false LANGCHAIN_TRACING_V2=false LANGCHAIN_TRACING=false
export TIKTOKEN_CACHE_DIR=$BENCH/tiktoken-cache
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
# The Catena example may shorten itself when this is set (`--quick`).
export CATENA_BENCH_QUICK=$QUICK

MODE=full
COPIES=2
if [ "$QUICK" = 1 ]; then MODE=quick; COPIES=1; fi
log "mode: $MODE; work dir $BENCH"

command -v python3 >/dev/null || { log "python3 is required (inputs, table)"; exit 1; }
command -v cargo >/dev/null || { log "cargo is required"; exit 1; }
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo "$ROOT/target")

# Runs one runner: its JSON lines go to results.jsonl, its stderr to logs/NAME.err (shown after),
# its SKIP lines to skipped.txt. Returns the runner's exit status.
run_runner() {
  local name=$1
  shift
  log "running $name: $*"
  local rc=0
  "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" || rc=$?
  grep -v '^SKIP ' "$LOGS/$name.err" | tail -n 20 | sed "s/^/  [$name] /" >&2 || true
  grep '^SKIP ' "$LOGS/$name.err" >>"$SKIPPED" || true
  grep '^SKIP ' "$LOGS/$name.err" | sed "s/^/  [$name] /" >&2 || true
  grep '^{' "$LOGS/$name.out" >>"$RESULTS" || true
  grep '^{' "$LOGS/$name.out" | sed "s/^/  /" >&2 || true
  if [ "$rc" != 0 ]; then log "$name exited with status $rc (log: $LOGS/$name.err)"; fi
  return "$rc"
}

# --- Python venv ---------------------------------------------------------------------------
PY=""
VENV=$BENCH/venv
REQ=$HERE/python/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV" >&2 || { rm -rf "$VENV"; log "python3 -m venv failed"; }
fi
if [ -x "$VENV/bin/python" ]; then
  if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$(sha "$REQ")" ]; then
    log "pip install -r $REQ"
    if "$VENV/bin/python" -m pip install -q --retries 1 --timeout 20 -r "$REQ" >&2; then
      sha "$REQ" >"$VENV/.requirements.sha256"
      PY=$VENV/bin/python
    else
      log "pip install failed (offline?): the Python peers are skipped"
    fi
  else
    PY=$VENV/bin/python
  fi
fi
if [ -z "$PY" ]; then
  for w in split_recursive_chars split_recursive_tokens search_single chain_invoke; do
    skip "$w" langchain-py "the Python venv could not be installed"
  done
  skip count_tokens_cl100k tiktoken-py "the Python venv could not be installed"
  skip search_single numpy "the Python venv could not be installed"
  skip search_batch numpy "the Python venv could not be installed"
fi

# --- Inputs --------------------------------------------------------------------------------
CORPUS=$DATA/corpus.txt
VECTORS=$DATA/vectors.f32
QUERIES=$DATA/queries.f32
python3 "$HERE/python/bench.py" gen-corpus --jsonl "$ROOT/benches/data/postgresql-15-docs.jsonl" \
  --out "$CORPUS" --copies "$COPIES"
if [ "$(stat -c %s "$VECTORS" 2>/dev/null || echo 0)" != 153600000 ] ||
  [ "$(stat -c %s "$QUERIES" 2>/dev/null || echo 0)" != 307200 ]; then
  GEN_PY=""
  if [ -n "$PY" ]; then GEN_PY=$PY; elif python3 -c 'import numpy' 2>/dev/null; then GEN_PY=python3; fi
  if [ -n "$GEN_PY" ]; then
    "$GEN_PY" "$HERE/python/bench.py" gen-vectors --out-dir "$DATA"
  else
    log "numpy unavailable: vectors.f32 and queries.f32 cannot be generated (search workloads will fail)"
  fi
else
  log "reusing $VECTORS and $QUERIES (delete them to regenerate)"
fi

# --- Rust peers (text-splitter, tiktoken-rs) -------------------------------------------------
RUST_PEERS=""
log "building rust-peers (release) into $BENCH/rust-target"
if cargo build --release --locked --manifest-path "$HERE/rust-peers/Cargo.toml" \
  --target-dir "$BENCH/rust-target" >&2; then
  RUST_PEERS=$BENCH/rust-target/release/catena-compare-rust-peers
else
  log "building rust-peers failed (offline?)"
  for w in split_recursive_chars split_recursive_tokens; do skip "$w" text-splitter-rs "build failed"; done
  skip count_tokens_cl100k tiktoken-rs "build failed"
fi

# tiktoken (Python) downloads cl100k_base's ranks on first use; offline, use the identical file
# that the tiktoken-rs crate ships (the same SHA-256 that tiktoken checks).
CL100K_SHA256=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
CL100K_CACHE=$TIKTOKEN_CACHE_DIR/9b5ad71b2ce5302211f9c61530b329a4922fc6a4 # sha1 of the URL
mkdir -p "$TIKTOKEN_CACHE_DIR"
if [ ! -s "$CL100K_CACHE" ]; then
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tiktoken-rs-*/assets/cl100k_base.tiktoken; do
    if [ -f "$f" ] && [ "$(sha256sum <"$f" | cut -c1-64)" = "$CL100K_SHA256" ]; then
      cp "$f" "$CL100K_CACHE"
      log "tiktoken cache: cl100k_base from $f"
      break
    fi
  done
fi

EXPECT=()
if [ -n "$PY" ]; then
  if TOKENS=$("$PY" "$HERE/python/bench.py" count-tokens --corpus "$CORPUS" 2>>"$LOGS/count-tokens.err"); then
    log "tiktoken-py: the corpus is $TOKENS cl100k tokens"
    EXPECT=(--expect-tokens "$TOKENS")
  else
    log "tiktoken-py could not count tokens (see $LOGS/count-tokens.err)"
  fi
fi

# --- LangChain.js ----------------------------------------------------------------------------
JSDIR=$BENCH/js
NODE_OK=0
if command -v node >/dev/null && command -v npm >/dev/null &&
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
  mkdir -p "$JSDIR"
  cp "$HERE/js/package.json" "$HERE/js/package-lock.json" "$HERE/js/bench.mjs" "$JSDIR/"
  if [ -d "$JSDIR/node_modules" ] &&
    [ "$(cat "$JSDIR/.lock.sha256" 2>/dev/null)" = "$(sha "$HERE/js/package-lock.json")" ]; then
    NODE_OK=1
  else
    log "npm ci in $JSDIR"
    if (cd "$JSDIR" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      sha "$HERE/js/package-lock.json" >"$JSDIR/.lock.sha256"
      NODE_OK=1
    else
      log "npm ci failed (offline?): the LangChain.js peers are skipped"
    fi
  fi
else
  log "Node.js >= 20 and npm not found: the LangChain.js peers are skipped"
fi
if [ "$NODE_OK" = 0 ]; then
  for w in split_recursive_chars split_recursive_tokens search_single chain_invoke; do
    skip "$w" langchain-js "LangChain.js could not be installed"
  done
  skip count_tokens_cl100k js-tiktoken "LangChain.js could not be installed"
fi

# --- Catena ----------------------------------------------------------------------------------
QUICK_ARG=()
if [ "$QUICK" = 1 ]; then QUICK_ARG=(--quick); fi
if [ -f "$ROOT/benches/examples/compare.rs" ] || [ -f "$ROOT/benches/examples/compare/main.rs" ]; then
  log "building Catena's compare example (release)"
  if cargo build --release --locked -p catena-benches --example compare >&2; then
    run_runner catena cargo run --release --locked -q -p catena-benches --example compare -- \
      --corpus "$CORPUS" --vectors "$VECTORS" --queries "$QUERIES" || CATENA_FAILED=1
  else
    log "building Catena's compare example FAILED"
    CATENA_FAILED=1
  fi
else
  log "benches/examples/compare.rs does not exist yet: the Catena rows are skipped"
  echo "SKIP * catena: benches/examples/compare.rs does not exist yet" >>"$SKIPPED"
fi

# --- Peers -----------------------------------------------------------------------------------
if [ -n "$RUST_PEERS" ]; then
  run_runner rust-peers "$RUST_PEERS" --corpus "$CORPUS" "${QUICK_ARG[@]}" "${EXPECT[@]}" || true
fi
if [ -n "$PY" ]; then
  run_runner python "$PY" "$HERE/python/bench.py" run --corpus "$CORPUS" --vectors "$VECTORS" \
    --queries "$QUERIES" "${QUICK_ARG[@]}" || true
fi
if [ "$NODE_OK" = 1 ]; then
  run_runner js bash -c 'cd "$1" && shift && exec node bench.mjs "$@"' _ "$JSDIR" --corpus "$CORPUS" \
    --vectors "$VECTORS" --queries "$QUERIES" "${QUICK_ARG[@]}" "${EXPECT[@]}" || true
fi

# --- Gateway under load (Catena only) --------------------------------------------------------
stop_pid() { # Ctrl-C (what load_target waits for), then SIGTERM after 10 s
  kill -INT "$1" 2>/dev/null || true
  local state
  for _ in $(seq 1 20); do
    state=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null || true)
    if [ -z "$state" ] || [ "$state" = Z ]; then break; fi
    sleep 0.5
  done
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
gateway_row() { # chunks workload
  local chunks=$1 workload=$2 port pid ready=0 cpu0 cpu1 wall0 wall1 duration=20s
  if [ "$QUICK" = 1 ]; then duration=5s; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log "gateway: load_target with $chunks chunks on 127.0.0.1:$port"
  : >"$LOGS/$workload.gateway.err"
  "$TARGET_DIR/release/examples/load_target" "127.0.0.1:$port" 50 "$chunks" 2>"$LOGS/$workload.gateway.err" &
  pid=$!
  for _ in $(seq 1 1200); do # up to 10 minutes to store the chunks
    if grep -q 'load target on http://' "$LOGS/$workload.gateway.err"; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$ready" != 1 ]; then
    log "gateway: load_target did not start (log: $LOGS/$workload.gateway.err)"
    stop_pid "$pid"
    CATENA_FAILED=1
    return
  fi
  cpu0=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
  wall0=$(date +%s.%N)
  wrk -t2 -c256 -d"$duration" --timeout 10s -s "$ROOT/examples/gateway/load/query.lua" \
    "http://127.0.0.1:$port/v1/query" >"$LOGS/$workload.wrk.txt" 2>&1 || true
  wall1=$(date +%s.%N)
  cpu1=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
  local hwm
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  stop_pid "$pid"
  sed "s/^/  [wrk $workload] /" "$LOGS/$workload.wrk.txt" >&2
  python3 - "$LOGS/$workload.wrk.txt" "$workload" "$chunks" "$cpu0" "$cpu1" "$wall0" "$wall1" "$hwm" \
    "$(grep -m1 'load target on http://' "$LOGS/$workload.gateway.err")" >>"$RESULTS" <<'EOF' || CATENA_FAILED=1
import json, re, sys
path, workload, chunks, cpu0, cpu1, wall0, wall1, hwm_kb, ready = sys.argv[1:]
text = open(path, encoding="utf-8").read()
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
reqs = int(re.search(r"requests=(\d+)", text).group(1))
errors = re.search(r"errors\(([^)]*)\)", text).group(1)
lat = dict(re.findall(r"(p50|p90|p99|max)=([\d.]+)ms", text))
cpu = (float(cpu1) - float(cpu0)) / 100.0  # clock ticks, _SC_CLK_TCK = 100
print(json.dumps({
    "workload": workload, "impl": "catena", "value": rps, "unit": "req/s",
    "wall_s": float(wall1) - float(wall0), "cpu_s": cpu,
    "note": f"chunks={chunks}; p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms; "
            f"{1000 * cpu / max(reqs, 1):.3f} ms CPU/request; RSS {int(hwm_kb) / 1024:.0f} MB (VmHWM); "
            f"errors {errors}; wrk -t2 -c256 on the same machine, stub model 50 ms; {ready.strip()}",
}, ensure_ascii=False))
EOF
  tail -n 1 "$RESULTS" | sed "s/^/  /" >&2
}

if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing wrk (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >&2 ||
    log "apt-get install wrk failed"
fi
if ! command -v wrk >/dev/null; then
  skip "gateway_rag_*" catena "wrk is not installed (and could not be)"
else
  log "building the gateway's load_target (release)"
  if cargo build --release --locked -p example-gateway --example load_target >&2; then
    gateway_row 10000 gateway_rag_10k
    gateway_row 100000 gateway_rag_100k
  else
    log "building load_target FAILED"
    CATENA_FAILED=1
  fi
fi

# --- The README's main command, warm (Catena only) ------------------------------------------
# `bash scripts/demo.sh` with the models cached and the gateway built (debug, as the README's
# command builds it), on an empty data directory and the embedded defaults: ingest docs/ and
# answer one question.
readme_row() {
  if ! bash scripts/models.sh fetch >"$LOGS/models.out" 2>"$LOGS/models.err"; then
    skip readme_main_warm catena "the local model files could not be fetched (scripts/models.sh)"
    return
  fi
  log "building the gateway (debug) for the README's main command"
  if ! cargo build --locked -p example-gateway >&2; then
    log "building the gateway FAILED"
    CATENA_FAILED=1
    return
  fi
  local data cpu0 cpu1 wall0 wall1 rc=0
  data=$(mktemp -d)
  # utime, stime, cutime, cstime of this shell: the children's CPU counts once they are waited for.
  cpu0=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' /proc/$$/stat)
  wall0=$(date +%s.%N)
  env -u DATABASE_URL -u QDRANT_URL -u OPENAI_API_KEY -u GEMINI_API_KEY -u OLLAMA_HOST -u ANTHROPIC_API_KEY \
    CATENA_DATA_DIR="$data" CATENA_GATEWAY_BIN="$TARGET_DIR/debug/gateway" \
    bash scripts/demo.sh "How does the recursive splitter choose where to cut?" \
    >"$LOGS/readme.out" 2>"$LOGS/readme.err" || rc=$?
  wall1=$(date +%s.%N)
  cpu1=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' /proc/$$/stat)
  rm -rf "$data"
  if [ "$rc" != 0 ]; then
    log "the README's main command FAILED (log: $LOGS/readme.err)"
    CATENA_FAILED=1
    return
  fi
  python3 - "$wall0" "$wall1" "$cpu0" "$cpu1" "$LOGS/readme.err" >>"$RESULTS" <<'EOF'
import json, re, sys
wall0, wall1, cpu0, cpu1, err = sys.argv[1:]
report = re.search(r"ingest report: (\{.*\})", open(err, encoding="utf-8").read())
chunks = json.loads(report.group(1)).get("chunks") if report else "?"
print(json.dumps({
    "workload": "readme_main_warm", "impl": "catena", "value": float(wall1) - float(wall0), "unit": "s",
    "wall_s": float(wall1) - float(wall0), "cpu_s": (float(cpu1) - float(cpu0)) / 100.0,
    "note": f"bash scripts/demo.sh, warm (models cached, gateway built in debug), empty data dir: "
            f"ingests docs/ ({chunks} chunks, local MiniLM) and answers with local SmolLM2-135M",
}, ensure_ascii=False))
EOF
  tail -n 1 "$RESULTS" | sed "s/^/  /" >&2
}
readme_row

# --- Table -----------------------------------------------------------------------------------
{
  echo "Mode: $MODE ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo
  python3 "$HERE/table.py" "$RESULTS" "$SKIPPED"
} >"$BENCH/results.md"
cat "$BENCH/results.md"
echo
echo "Results: $RESULTS (JSON lines), $BENCH/results.md (this table), logs in $LOGS" >&2
if [ "$CATENA_FAILED" = 1 ]; then
  log "a Catena step FAILED (see above)"
  exit 1
fi
