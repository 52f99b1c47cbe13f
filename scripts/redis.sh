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
# State lives in $CATENA_REDIS_DIR (default ${TMPDIR:-/tmp}/catena-redis-$UID), a directory only
# the caller owns (mode 0700; one that exists and belongs to another user is refused): `state`
# (the port and the password, read back as data, never sourced), `redis.conf` (0600: it holds
# the password), `redis.pid` and `redis.log`. The server requires a random password made at
# each start. Progress goes to stderr; only the export line goes to stdout.
set -euo pipefail

TMP_ROOT="${TMPDIR:-/tmp}"
TMP_ROOT="${TMP_ROOT%/}"
STATE_DIR="${CATENA_REDIS_DIR:-$TMP_ROOT/catena-redis-$(id -u)}"
STATE_DIR="${STATE_DIR%/}"
STATE_FILE="$STATE_DIR/state"
PID_FILE="$STATE_DIR/redis.pid"
LOG_FILE="$STATE_DIR/redis.log"

log() { printf 'redis.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PASSWORD=""

# Makes `$1` a directory only the caller owns, mode 0700; an existing one is used only when it
# is a real directory the caller owns.
private_dir() {
    local dir="$1"
    if [ -e "$dir" ] || [ -L "$dir" ]; then
        { [ -d "$dir" ] && [ ! -L "$dir" ]; } || die "$dir exists and is not a directory; refusing to use it"
        [ "$(stat -c %u "$dir")" = "$(id -u)" ] || die "$dir belongs to another user; refusing to use it"
        chmod 700 "$dir"
    else
        mkdir -p "$(dirname "$dir")"
        (umask 077 && mkdir "$dir")
    fi
}

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

# Reads the state file as data: known keys only, each value checked; nothing is executed.
load_state() {
    [ -f "$STATE_FILE" ] || return 1
    PORT="" PASSWORD=""
    local key value
    while IFS='=' read -r key value || [ -n "$key" ]; do
        case "$key" in
            PORT) [[ "$value" =~ ^[0-9]{1,5}$ ]] && PORT="$value" ;;
            PASSWORD) [[ "$value" =~ ^[0-9a-f]{32}$ ]] && PASSWORD="$value" ;;
        esac
    done <"$STATE_FILE"
    [ -n "$PORT" ] && [ -n "$PASSWORD" ]
}

cli() {
    REDISCLI_AUTH="$PASSWORD" redis-cli -h 127.0.0.1 -p "$PORT" "$@" </dev/null
}

ping() {
    [ "$(cli ping 2>/dev/null)" = "PONG" ]
}

is_running() {
    load_state || return 1
    command -v redis-cli >/dev/null 2>&1 || return 1
    ping
}

print_env() {
    printf 'export REDIS_URL=redis://:%s@127.0.0.1:%s/\n' "$PASSWORD" "$PORT"
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
    # A server that died or a half-finished start: clear it (only our own directory).
    private_dir "$STATE_DIR"
    if load_state && command -v redis-cli >/dev/null 2>&1; then
        cli shutdown nosave >/dev/null 2>&1 || true
    fi
    kill_from_pidfile
    rm -rf "${STATE_DIR:?}"/*
    ensure_installed
    PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    # The password goes in a 0600 config file, never on a command line (`ps` shows those).
    (umask 077 && printf 'requirepass %s\n' "$PASSWORD" >"$STATE_DIR/redis.conf")

    local attempt started=0 i
    for attempt in 1 2 3 4 5; do
        PORT="$(free_port)"
        log "starting redis-server on 127.0.0.1:$PORT (attempt $attempt)"
        rm -f "$PID_FILE"
        redis-server "$STATE_DIR/redis.conf" --bind 127.0.0.1 --port "$PORT" --protected-mode yes \
            --save '' --appendonly no --daemonize yes \
            --dir "$STATE_DIR" --pidfile "$PID_FILE" --logfile "$LOG_FILE" </dev/null >&2 || continue
        for i in $(seq 1 100); do
            if ping; then
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
    (umask 077 && printf 'PORT=%s\nPASSWORD=%s\n' "$PORT" "$PASSWORD" >"$STATE_FILE")
    log "ready: $(redis-server --version | head -n 1)"
    print_env
}

cmd_stop() {
    if load_state; then
        if command -v redis-cli >/dev/null 2>&1; then
            cli shutdown nosave >/dev/null 2>&1 || true
        fi
        kill_from_pidfile
        log "stopped the server on 127.0.0.1:$PORT"
    else
        kill_from_pidfile
        log "no server state in $STATE_DIR; nothing to stop"
    fi
    if [ -d "$STATE_DIR" ] && [ ! -L "$STATE_DIR" ] && [ "$(stat -c %u "$STATE_DIR")" = "$(id -u)" ]; then
        rm -rf "$STATE_DIR"
    fi
}

cmd_env() {
    is_running || die "no Redis running; start one with: eval \"\$(scripts/redis.sh start)\""
    print_env
}

# Nothing is read from (or run out of) a state directory that is not the caller's own.
if [ -e "$STATE_DIR" ] || [ -L "$STATE_DIR" ]; then
    { [ -d "$STATE_DIR" ] && [ ! -L "$STATE_DIR" ] && [ "$(stat -c %u "$STATE_DIR")" = "$(id -u)" ]; } \
        || die "$STATE_DIR belongs to another user (or is not a directory); refusing to use it"
fi

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    *)
        printf 'usage: %s start|stop|env\n' "$0" >&2
        exit 2
        ;;
esac
