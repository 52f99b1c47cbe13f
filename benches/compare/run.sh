#!/usr/bin/env bash
# Catena side by side with LangChain (Python, JS), numpy and the Rust crates text-splitter and
# tiktoken-rs on the same inputs; prints a Markdown table of the results. See README.md here.
#
#   bash benches/compare/run.sh [--quick] [--no-models]
#
# Everything it installs or writes goes under .catena/bench/ (git-ignored): the inputs (data/), a
# Python venv (venv/), LangChain.js (js/), the Rust peers' build (rust-target/), the local-model
# peers (models-venv/: sentence-transformers on CPU PyTorch and llama-cpp-python built from its
# sdist, about 6 GB; --no-models skips them and Catena's model rows), the logs (logs/) and the
# results (results.jsonl, results.md). A peer that cannot be installed (offline, a missing
# tool) is skipped with a message; a failing Catena step makes the exit status 1 at the end.
set -euo pipefail
exec </dev/null

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
QUICK=0
MODELS=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-models) MODELS=0 ;;
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
# install_venv DIR REQUIREMENTS: creates the venv and installs the pinned requirements (again only
# when they change); prints the venv's python, or nothing when that failed.
install_venv() {
  local venv=$1 req=$2
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv" >&2 || { rm -rf "$venv"; log "python3 -m venv failed"; return; }
  fi
  if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$(sha "$req")" ]; then
    log "pip install -r $req"
    # CMAKE_BUILD_PARALLEL_LEVEL: llama-cpp-python compiles llama.cpp from its sdist.
    if ! CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$venv/bin/python" -m pip install -q --retries 1 --timeout 60 \
      -r "$req" >"$LOGS/pip-$(basename "$venv").log" 2>&1; then
      log "pip install failed (offline?; log: $LOGS/pip-$(basename "$venv").log)"
      return
    fi
    sha "$req" >"$venv/.requirements.sha256"
  fi
  echo "$venv/bin/python"
}
PY=$(install_venv "$BENCH/venv" "$HERE/python/requirements.txt")
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

# --- Local models: the model files, the passages, the peers' venv ----------------------------
# The same files for everyone: all-MiniLM-L6-v2 and SmolLM2-135M-Instruct (Q4_1 GGUF), from
# scripts/models.sh; 512 passages of 90 words cut from the corpus.
MODEL_ARGS=()
MPY=""
if [ "$MODELS" = 1 ]; then
  PASSAGES=$DATA/passages.jsonl
  # models.sh prints `export CATENA_EMBED_MODEL=...` lines, shell-quoted.
  CATENA_EMBED_MODEL="" CATENA_CHAT_MODEL=""
  if bash scripts/models.sh fetch >"$LOGS/models.out" 2>"$LOGS/models.err" &&
    eval "$(grep -E '^export CATENA_(EMBED|CHAT)_MODEL=' "$LOGS/models.out")" &&
    [ -n "$CATENA_EMBED_MODEL" ] && [ -n "$CATENA_CHAT_MODEL" ] &&
    python3 "$HERE/python/models.py" gen-passages --corpus "$CORPUS" --out "$PASSAGES"; then
    MODEL_ARGS=(--passages "$PASSAGES" --embed-model "$CATENA_EMBED_MODEL" --chat-model "$CATENA_CHAT_MODEL"
      --embeddings-out "$DATA/catena-embeddings.f32")
    # torch with its CUDA libraries (about 6 GB); llama-cpp-python builds from source.
    MPY=$(install_venv "$BENCH/models-venv" "$HERE/python/requirements-models.txt")
    if [ -z "$MPY" ]; then
      skip embed_minilm sentence-transformers "the models venv could not be installed"
      skip decode_smollm2 llama-cpp "the models venv could not be installed"
    fi
  else
    for w in embed_minilm decode_smollm2; do
      skip "$w" '*' "the local model files could not be fetched or the passages made (logs/models.err)"
    done
  fi
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
    # The local models' threads: every CPU this process may use, as the model peers get. The
    # Python runner compares the vectors written here; an old file must not stand in for them.
    rm -f "$DATA/catena-embeddings.f32"
    run_runner catena env CANDLE_NUM_THREADS="$(nproc)" RAYON_NUM_THREADS="$(nproc)" \
      cargo run --release --locked -q -p catena-benches --example compare -- \
      --corpus "$CORPUS" --vectors "$VECTORS" --queries "$QUERIES" "${MODEL_ARGS[@]}" || CATENA_FAILED=1
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
if [ -n "$MPY" ]; then
  # After Catena's runner: it compares Catena's vectors with sentence-transformers'.
  run_runner models "$MPY" "$HERE/python/models.py" run "${MODEL_ARGS[@]/--embeddings-out/--catena-embeddings}" \
    "${QUICK_ARG[@]}" || true
fi
if [ "$NODE_OK" = 1 ]; then
  run_runner js bash -c 'cd "$1" && shift && exec node bench.mjs "$@"' _ "$JSDIR" --corpus "$CORPUS" \
    --vectors "$VECTORS" --queries "$QUERIES" "${QUICK_ARG[@]}" "${EXPECT[@]}" || true
fi

# --- Gateway under load --------------------------------------------------------------------
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
# load_row IMPL WORKLOAD CHUNKS CONNS TIMEOUT NOTE -- COMMAND...: starts the server COMMAND (its stderr goes
# to logs/WORKLOAD.IMPL.err; it prints a line with "on http://" when it serves; its address is
# 127.0.0.1:$PORT, set before the call), loads /v1/query with wrk -t2 -c CONNS, and appends the
# result (req/s, latency percentiles, the server's CPU per request and peak RSS) to results.jsonl.
load_row() {
  local impl=$1 workload=$2 chunks=$3 conns=$4 timeout=$5 note=$6 pid ready=0 cpu0 cpu1 wall0 wall1 hwm
  shift 7
  local duration=20s err="$LOGS/$workload.$impl.err" wrk_out="$LOGS/$workload.$impl.wrk.txt"
  if [ "$QUICK" = 1 ]; then duration=5s; fi
  log "gateway: $impl with $chunks chunks on 127.0.0.1:$PORT"
  "$@" 2>"$err" &
  pid=$!
  for _ in $(seq 1 1200); do # up to 10 minutes to store the chunks
    if grep -q ' on http://' "$err"; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$ready" != 1 ]; then
    log "gateway: $impl did not start (log: $err)"
    stop_pid "$pid"
    return 1
  fi
  cpu0=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
  wall0=$(date +%s.%N)
  wrk -t2 -c"$conns" -d"$duration" --timeout "$timeout" -s "$ROOT/examples/gateway/load/query.lua" \
    "http://127.0.0.1:$PORT/v1/query" >"$wrk_out" 2>&1 || true
  wall1=$(date +%s.%N)
  cpu1=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  stop_pid "$pid"
  sed "s/^/  [wrk $workload $impl] /" "$wrk_out" >&2
  python3 - "$wrk_out" "$impl" "$workload" "$chunks" "$conns" "$cpu0" "$cpu1" "$wall0" "$wall1" "$hwm" \
    "$timeout" "$note" "$(grep -m1 ' on http://' "$err")" >>"$RESULTS" <<'EOF' || return 1
import json, re, sys
path, impl, workload, chunks, conns, cpu0, cpu1, wall0, wall1, hwm_kb, timeout, note, ready = sys.argv[1:]
text = open(path, encoding="utf-8").read()
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
reqs = int(re.search(r"requests=(\d+)", text).group(1))
errors = re.search(r"errors\(([^)]*)\)", text).group(1)
lat = dict(re.findall(r"(p50|p90|p99|max)=([\d.]+)ms", text))
cpu = (float(cpu1) - float(cpu0)) / 100.0  # clock ticks, _SC_CLK_TCK = 100
print(json.dumps({
    "workload": workload, "impl": impl, "value": rps, "unit": "req/s",
    "wall_s": float(wall1) - float(wall0), "cpu_s": cpu,
    "note": f"chunks={chunks}; p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms; "
            f"{1000 * cpu / max(reqs, 1):.3f} ms CPU/request; RSS {int(hwm_kb) / 1024:.0f} MB (VmHWM); "
            f"errors {errors}; wrk -t2 -c{conns} --timeout {timeout} on the same machine, stub model 50 ms; "
            f"{note}{ready.strip()}",
}, ensure_ascii=False))
EOF
  tail -n 1 "$RESULTS" | sed "s/^/  /" >&2
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Catena's gateway: the load target (the gateway with a stub model, the embedded store), with
# glibc's heaps as the gateway image sets them (deploy/gateway.Dockerfile: MALLOC_ARENA_MAX=2).
gateway_row() { # chunks workload
  PORT=$(free_port)
  load_row catena "$2" "$1" 256 10s "MALLOC_ARENA_MAX=2 as in the gateway image; " -- \
    env MALLOC_ARENA_MAX=2 "$TARGET_DIR/release/examples/load_target" "127.0.0.1:$PORT" 50 "$1" ||
    CATENA_FAILED=1
}
# LangChain Python's gateway (benches/compare/python/gateway.py: FastAPI, InMemoryVectorStore, an
# LCEL chain, the same stub model delay) on the same chunks and request. Each request costs it about
# a quarter of a CPU second, so at 256 connections none completes within wrk's 10 s timeout (tried):
# it is loaded with 8 connections and a 30 s timeout, and compared by its CPU per request too.
langchain_gateway_row() {
  PORT=$(free_port)
  load_row langchain-py gateway_rag_10k 10000 8 30s "FastAPI + uvicorn, one process; " -- \
    "$PY" "$HERE/python/gateway.py" --port "$PORT" --chunks 10000 \
    --corpus "$ROOT/benches/data/postgresql-15-docs.jsonl" ||
    skip gateway_rag_10k langchain-py "the LangChain gateway did not run (log: $LOGS/gateway_rag_10k.langchain-py.err)"
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
  if [ -n "$PY" ]; then
    langchain_gateway_row
  else
    skip gateway_rag_10k langchain-py "the Python venv could not be installed"
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
