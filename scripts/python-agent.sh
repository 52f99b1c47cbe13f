#!/usr/bin/env bash
# The Python agent service (examples/python-agent): the catena.agent.v1 contract served from
# Python with LangChain, to show the contract is language-neutral.
#
#   scripts/python-agent.sh setup          # venv + pinned requirements + stubs (idempotent)
#   scripts/python-agent.sh run [ADDR]     # setup, then serve on ADDR (default $CATENA_PY_AGENT_ADDR,
#                                          # else 127.0.0.1:50052); extra arguments go to server.py
#   scripts/python-agent.sh python ARGS..  # the venv's python (after setup)
#
# - The virtual environment is .catena/python-agent-venv (git-ignored). Requirements are
#   installed only when examples/python-agent/requirements.txt (or the Python version) changed
#   since the last install: a sha256 of both is kept in the venv.
# - Stubs are generated from the SAME contract file the Rust crates compile,
#   agents/proto/catena/agent/v1/agent.proto, with `python -m grpc_tools.protoc -I agents/proto`,
#   into examples/python-agent/generated/ (git-ignored); again only when the proto changed.
# - Never reads stdin; works unattended (CI=true). Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/examples/python-agent"
VENV="${CATENA_PY_AGENT_VENV:-$ROOT/.catena/python-agent-venv}"
REQS="$APP/requirements.txt"
PROTO_ROOT="$ROOT/agents/proto"
PROTO="$PROTO_ROOT/catena/agent/v1/agent.proto"
GEN="$APP/generated"
PY="$VENV/bin/python"

log() { printf 'python-agent.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

ensure_venv() {
    local base_python="${CATENA_PYTHON:-python3}"
    command -v "$base_python" >/dev/null 2>&1 || die "$base_python not found (set CATENA_PYTHON)"
    if [ ! -x "$PY" ]; then
        log "creating the virtual environment $VENV"
        mkdir -p "$(dirname "$VENV")"
        "$base_python" -m venv "$VENV" </dev/null >&2 || die "python3 -m venv failed"
    fi
    local want have=""
    want="$( { cat "$REQS"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    [ -f "$VENV/.requirements.sha256" ] && have="$(cat "$VENV/.requirements.sha256")"
    if [ "$want" != "$have" ]; then
        log "installing $(grep -c '^[A-Za-z]' "$REQS") pinned, hash-checked requirements into $VENV"
        "$PY" -m pip install -q --require-hashes --only-binary=:all: -r "$REQS" </dev/null >&2 \
            || die "pip install failed"
        printf '%s\n' "$want" >"$VENV/.requirements.sha256"
    fi
}

ensure_stubs() {
    [ -f "$PROTO" ] || die "the contract $PROTO is missing"
    local want have=""
    want="$(hash_of "$PROTO" "$VENV/.requirements.sha256")"
    [ -f "$GEN/.proto.sha256" ] && have="$(cat "$GEN/.proto.sha256")"
    if [ "$want" != "$have" ] || [ ! -f "$GEN/catena/agent/v1/agent_pb2_grpc.py" ]; then
        log "generating stubs from agents/proto/catena/agent/v1/agent.proto into examples/python-agent/generated"
        rm -rf "$GEN"
        mkdir -p "$GEN"
        # grpc_tools.protoc adds its bundled well-known types (google/protobuf/*.proto).
        (cd "$ROOT" && "$PY" -m grpc_tools.protoc -I agents/proto \
            --python_out="$GEN" --pyi_out="$GEN" --grpc_python_out="$GEN" \
            catena/agent/v1/agent.proto </dev/null >&2) || die "protoc failed"
        printf '%s\n' "$want" >"$GEN/.proto.sha256"
    fi
}

setup() {
    ensure_venv
    ensure_stubs
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup)
        setup
        log "ready: $PY"
        ;;
    run)
        setup
        addr="${CATENA_PY_AGENT_ADDR:-127.0.0.1:50052}"
        if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
            addr="$1"
            shift
        fi
        exec "$PY" "$APP/server.py" --addr "$addr" "$@" </dev/null
        ;;
    python)
        [ -x "$PY" ] || die "no venv yet: run \`bash scripts/python-agent.sh setup\`"
        exec "$PY" "$@"
        ;;
    *)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
