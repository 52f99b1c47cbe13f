#!/usr/bin/env bash
# Makes a headless browser available for the gateway's end-to-end test of its chat page.
#
#   scripts/browser.sh        # install what is missing (idempotent); prints the export lines
#   scripts/browser.sh env    # prints the export lines if everything is present (exit 1 if not)
#
# Usage in a shell:  eval "$(bash scripts/browser.sh)"
#
# - Chromium: Debian's `chromium` package, installed with apt-get when /usr/bin/chromium is
#   missing (as root, or through sudo). Exported as CATENA_CHROMIUM. Set CATENA_CHROMIUM beforehand
#   to use another Chromium binary and skip apt.
# - Driver: `playwright-core` (pinned; no bundled browsers are downloaded) from npm, installed into
#   .catena/browser/node_modules of the repository (git-ignored). Exported as
#   CATENA_PLAYWRIGHT_DIR (the directory holding node_modules). Needs node and npm.
#
# Every step is idempotent and never reads stdin. Progress goes to stderr; only the export lines go
# to stdout.
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRIVER_DIR="${CATENA_PLAYWRIGHT_DIR:-$ROOT/.catena/browser}"
DRIVER_DIR="${DRIVER_DIR%/}"
CHROMIUM="${CATENA_CHROMIUM:-/usr/bin/chromium}"

log() { printf 'browser.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_env() {
    printf 'export CATENA_CHROMIUM=%q\n' "$CHROMIUM"
    printf 'export CATENA_PLAYWRIGHT_DIR=%q\n' "$DRIVER_DIR"
}

driver_version() {
    local pkg="$DRIVER_DIR/node_modules/playwright-core/package.json"
    [ -f "$pkg" ] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

# Runs "$@" up to 10 times, 15 s apart: another apt-get (the machine's own, or this script run
# for another driver directory) may hold apt's locks for a while.
with_retries() {
    local try
    for try in 1 2 3 4 5 6 7 8 9 10; do
        "$@" && return 0
        [ "$try" = 10 ] && return 1
        log "retrying in 15 s (attempt $try failed): $*"
        sleep 15
    done
}

have_chromium() { [ -x "$CHROMIUM" ]; }
have_driver() { [ "$(driver_version)" = "$PLAYWRIGHT_VERSION" ]; }

install_chromium() {
    have_chromium && return
    [ "$CHROMIUM" = /usr/bin/chromium ] || die "CATENA_CHROMIUM=$CHROMIUM is not an executable"
    command -v apt-get >/dev/null || die "no apt-get: install Chromium and set CATENA_CHROMIUM"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install Debian's chromium package"
        sudo=(sudo -n)
    fi
    log "installing Debian's chromium with apt-get"
    with_retries "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q </dev/null >&2 \
        || die "apt-get update failed"
    with_retries "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends chromium </dev/null >&2 || die "apt-get install chromium failed"
    have_chromium || die "$CHROMIUM missing after installing chromium"
}

install_driver() {
    have_driver && return
    command -v node >/dev/null || die "node is required (Debian: apt-get install nodejs npm)"
    command -v npm >/dev/null || die "npm is required (Debian: apt-get install npm)"
    log "installing playwright-core@$PLAYWRIGHT_VERSION into $DRIVER_DIR"
    mkdir -p "$DRIVER_DIR"
    [ -f "$DRIVER_DIR/package.json" ] \
        || printf '{ "name": "catena-browser", "private": true }\n' >"$DRIVER_DIR/package.json"
    # playwright-core downloads no browsers; the variable makes sure of it on every version.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_yes=true npm install --prefix "$DRIVER_DIR" \
        --no-audit --no-fund --no-save --no-package-lock --loglevel=error \
        "playwright-core@$PLAYWRIGHT_VERSION" </dev/null >&2 || die "npm install failed"
    have_driver || die "playwright-core@$PLAYWRIGHT_VERSION missing after npm install"
}

case "${1:-install}" in
    install)
        # One install at a time: tests that each need the browser run this script at once, and
        # two apt-get or npm runs in parallel fail on each other's locks.
        mkdir -p "$DRIVER_DIR"
        exec 9>"$DRIVER_DIR/.install.lock"
        flock 9 || die "cannot lock $DRIVER_DIR/.install.lock"
        install_chromium
        install_driver
        log "ready: $("$CHROMIUM" --version 2>/dev/null || echo chromium), playwright-core $PLAYWRIGHT_VERSION"
        print_env
        ;;
    env)
        have_chromium || die "no Chromium at $CHROMIUM; run: bash scripts/browser.sh"
        have_driver || die "playwright-core $PLAYWRIGHT_VERSION missing; run: bash scripts/browser.sh"
        print_env
        ;;
    *) die "usage: $0 [install|env]" ;;
esac
