#!/usr/bin/env bash
# Attacks on the test scripts that start servers (scripts/pg.sh, scripts/redis.sh), each of
# which must fail: a state directory planted by another user, a state file that would run a
# command if it were sourced, a published password, and (as root) a binary cache anyone can
# write. Starts and stops its own servers in private directories; runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { printf 'check-scripts: FAILED: %s\n' "$*" >&2; exit 1; }
ok() { printf 'check-scripts: ok: %s\n' "$*" >&2; }

work="$(mktemp -d)"
cleanup() {
    CATENA_PG_DIR="$work/pg" bash scripts/pg.sh stop >/dev/null 2>&1 || true
    CATENA_REDIS_DIR="$work/redis" bash scripts/redis.sh stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

for script in pg redis; do
    var="CATENA_$(printf %s "$script" | tr a-z A-Z)_DIR"

    # 1. A state directory that belongs to someone else is refused, not used or deleted.
    if [ "$(id -u)" -eq 0 ] && id -u nobody >/dev/null 2>&1; then
        planted="$work/planted-$script"
        mkdir "$planted"
        touch "$planted/keep"
        chown -R nobody "$planted"
        if env "$var=$planted" bash "scripts/$script.sh" start >/dev/null 2>"$work/err"; then
            fail "$script.sh used a state directory owned by another user"
        fi
        grep -q "belongs to another user" "$work/err" || fail "$script.sh: $(cat "$work/err")"
        [ -f "$planted/keep" ] || fail "$script.sh deleted files in another user's directory"
        ok "$script.sh refuses a state directory owned by another user"
    fi

    # 2. The state file is data: a line that would run a command when sourced does nothing.
    dir="$work/$script"
    env "$var=$dir" bash "scripts/$script.sh" start >"$work/env-$script" 2>/dev/null
    [ "$(stat -c %a "$dir")" = 700 ] || fail "$script.sh state directory is not 0700"
    [ "$(stat -c %a "$dir/state")" = 600 ] || fail "$script.sh state file is not 0600"
    printf 'touch %s/pwned\nPORT=1$(touch %s/pwned2)\n' "$work" "$work" >>"$dir/state"
    env "$var=$dir" bash "scripts/$script.sh" env >/dev/null 2>&1 || true
    [ ! -e "$work/pwned" ] && [ ! -e "$work/pwned2" ] || fail "$script.sh executed its state file"
    ok "$script.sh reads its state file as data"

    # 3. No published password: a random one, different at each start.
    first="$(cat "$work/env-$script")"
    case "$first" in
        *catena:catena@* | *redis://127.0.0.1*) fail "$script.sh uses a published or no password: $first" ;;
    esac
    env "$var=$dir" bash "scripts/$script.sh" stop >/dev/null 2>&1
    second="$(env "$var=$dir" bash "scripts/$script.sh" start 2>/dev/null)"
    [ "$first" != "$second" ] || fail "$script.sh made the same password twice"
    env "$var=$dir" bash "scripts/$script.sh" stop >/dev/null 2>&1
    ok "$script.sh starts with a random password"
done

# 4. As root, PostgreSQL's binaries never run from a cache others can write.
if [ "$(id -u)" -eq 0 ]; then
    mkdir -m 777 "$work/open-cache"
    if CATENA_PG_DIR="$work/pg2" CATENA_PG_BIN_CACHE="$work/open-cache" bash scripts/pg.sh start \
        >/dev/null 2>"$work/err"; then
        fail "pg.sh ran binaries from a world-writable cache"
    fi
    grep -q "writable by others\|not a directory owned by root" "$work/err" || fail "pg.sh: $(cat "$work/err")"
    ok "pg.sh refuses a binary cache others can write"
fi
printf 'check-scripts: all checks passed\n' >&2
