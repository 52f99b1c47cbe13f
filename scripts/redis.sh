#!/usr/bin/env bash
# A throw-away Redis server on 127.0.0.1 for the Redis chat history tests.
#
#   scripts/redis.sh start   # install Debian's redis-server if missing, start it; prints the export line
#   scripts/redis.sh env     # prints `export REDIS_URL=...` for the running server (exit 1 if none)
#   scripts/redis.sh stop    # shuts the server down and deletes its directory
#
# Usage in a shell:  eval "$(scripts/redis.sh start)"  …  scripts/redis.sh stop
#
# The server listens on 127.0.0.1 only, on a free port, with no persistence (no RDB snapshots,
# no AOF), daemonized. Every command is idempotent and never reads stdin, so it works unattended
# (CI=true). Installing uses apt-get (with sudo when not root and sudo exists).
#
# State lives in $CATENA_REDIS_DIR (default ${TMPDIR:-/tmp}/catena-redis): `state` (the port),
# `redis.pid` and `redis.log`. Progress goes to stderr; only the export line goes to stdout.
set -euo pipefail

TMP_ROOT="${TMPDIR:-/tmp}"
TMP_ROOT="${TMP_ROOT%/}"
STATE_DIR="${CATENA_REDIS_DIR:-$TMP_ROOT/catena-redis}"
STATE_FILE="$STATE_DIR/state"
PID_FILE="$STATE_DIR/redis.pid"
LOG_FILE="$STATE_DIR/redis.log"

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "redis-server is missing and installing it needs root (no sudo found)"
    fi
}

ensure_installed() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "redis-server is missing and apt-get is not available"
    log "installing redis-server (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server </dev/null >&2 \
        || die "apt-get install redis-server failed"
    command -v redis-server >/dev/null 2>&1 || die "redis-server installed but not on PATH"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

load_state() {
    [ -f "$STATE_FILE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE_FILE"
    [ -n "${PORT:-}" ]
}

ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null </dev/null)" = "PONG" ]
}

is_running() {
    load_state || return 1
    command -v redis-cli >/dev/null 2>&1 || return 1
    ping "$PORT"
}

print_env() {
    printf 'export REDIS_URL=redis://127.0.0.1:%s/\n' "$PORT"
}

kill_from_pidfile() {
    if [ -f "$PID_FILE" ]; then
        local pid
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            local i
            for i in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
}

cmd_start() {
    if is_running; then
        log "already running on 127.0.0.1:$PORT"
        print_env
        return
    fi
    # A server that died or a half-finished start: clear it.
    if load_state && command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 </dev/null || true
    fi
    kill_from_pidfile
    rm -rf "$STATE_DIR"
    ensure_installed
    mkdir -p "$STATE_DIR"

    local attempt started=0 i
    for attempt in 1 2 3 4 5; do
        PORT="$(free_port)"
        log "starting redis-server on 127.0.0.1:$PORT (attempt $attempt)"
        rm -f "$PID_FILE"
        redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes \
            --save '' --appendonly no --daemonize yes \
            --dir "$STATE_DIR" --pidfile "$PID_FILE" --logfile "$LOG_FILE" </dev/null >&2 || continue
        for i in $(seq 1 100); do
            if ping "$PORT"; then
                started=1
                break
            fi
            sleep 0.1
        done
        [ "$started" -eq 1 ] && break
        kill_from_pidfile
    done
    if [ "$started" -ne 1 ]; then
        [ -f "$LOG_FILE" ] && tail -n 30 "$LOG_FILE" >&2
        die "redis-server did not start"
    fi
    printf 'PORT=%q\n' "$PORT" >"$STATE_FILE"
    log "ready: $(redis-server --version | head -n 1)"
    print_env
}

cmd_stop() {
    if load_state; then
        if command -v redis-cli >/dev/null 2>&1; then
            redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 </dev/null || true
        fi
        kill_from_pidfile
        log "stopped the server on 127.0.0.1:$PORT"
    else
        kill_from_pidfile
        log "no server state in $STATE_DIR; nothing to stop"
    fi
    rm -rf "$STATE_DIR"
}

cmd_env() {
    is_running || die "no Redis running; start one with: eval \"\$(scripts/redis.sh start)\""
    print_env
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    *)
        printf 'usage: %s start|stop|env\n' "$0" >&2
        exit 2
        ;;
esac
