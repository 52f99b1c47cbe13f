#!/usr/bin/env bash
# Fuzzes every parser that reads untrusted bytes (fuzz/, docs/fuzzing.md) with cargo-fuzz
# (libFuzzer) on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's `-Z` flags through,
# and `--sanitizer none` needs no nightly-only sanitizer runtime. cargo-fuzz is installed once
# (from crates.io, pinned, into ${CATENA_TOOLS_DIR:-~/.cache/catena/tools}) when missing.
#
#   scripts/fuzz.sh [smoke]              build all targets, run each ~5 s (the test command's check)
#   scripts/fuzz.sh long SECONDS [T...]  run each target (or the named ones) for SECONDS
#   scripts/fuzz.sh build                only build
#
# Smoke runs fuzz a temporary copy of the seeds in fuzz/corpus/ (the repository stays clean);
# long runs grow fuzz/target/corpus/<target> (git-ignored) from those seeds. Crashing inputs
# go to fuzz/artifacts/<target>/ (git-ignored); replay one with
#   fuzz/target/<host>/release/<target> fuzz/artifacts/<target>/crash-…
# Exits non-zero when a target crashes, leaks past the RSS limit or times out.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="0.13.2"
tools="${CATENA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/catena/tools}"
smoke_seconds="${CATENA_FUZZ_SMOKE_SECONDS:-5}"
rss_limit_mb=2048

mode="${1:-smoke}"
[ $# -gt 0 ] && shift
case "$mode" in
    smoke) seconds="$smoke_seconds" ;;
    long)
        seconds="${1:?usage: scripts/fuzz.sh long SECONDS [TARGET...]}"
        shift
        ;;
    build) seconds=0 ;;
    *)
        echo "usage: scripts/fuzz.sh [smoke | long SECONDS [TARGET...] | build]" >&2
        exit 2
        ;;
esac

# The test command lints the workspace with clippy as a rustc wrapper and may point
# CARGO_TARGET_DIR elsewhere; neither applies to cargo-fuzz or to the fuzz crate, which has
# its own target dir (fuzz/target).
clean_env=(env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS -u CARGO_TARGET_DIR -u RUSTFLAGS)
# The default toolchain (CI machines have only one, a stable one); CATENA_FUZZ_TOOLCHAIN picks
# another through rustup.
cargo_cmd=(cargo)
if [ -n "${CATENA_FUZZ_TOOLCHAIN:-}" ] && command -v rustup >/dev/null 2>&1; then
    cargo_cmd=(cargo "+$CATENA_FUZZ_TOOLCHAIN")
fi

cargo_fuzz="$tools/bin/cargo-fuzz"
if ! { [ -x "$cargo_fuzz" ] && "$cargo_fuzz" --version | grep -q " $version\$"; }; then
    echo "installing cargo-fuzz $version into $tools" >&2
    "${clean_env[@]}" "${cargo_cmd[@]}" install cargo-fuzz --version "$version" --locked \
        --root "$tools" --quiet
fi
export PATH="$tools/bin:$PATH"

cd "$root/fuzz"
started=$SECONDS
"${clean_env[@]}" RUSTC_BOOTSTRAP=1 "${cargo_cmd[@]}" fuzz build --sanitizer none </dev/null
echo "fuzz: built all targets in $((SECONDS - started)) s" >&2
[ "$mode" = build ] && exit 0

host="$("${cargo_cmd[@]/cargo/rustc}" -vV | sed -n 's/^host: //p')"
bin_dir="$root/fuzz/target/$host/release"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${clean_env[@]}" RUSTC_BOOTSTRAP=1 "${cargo_cmd[@]}" fuzz list)
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/catena-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
failed=()
printf '%-16s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    if [ "$mode" = smoke ]; then
        corpus="$scratch/corpus-$t"
    else
        corpus="$root/fuzz/target/corpus/$t"
    fi
    mkdir -p "$corpus" "$root/fuzz/artifacts/$t"
    if [ -d "$root/fuzz/corpus/$t" ]; then
        cp -n "$root/fuzz/corpus/$t"/* "$corpus/" 2>/dev/null || true
    fi
    log="$scratch/$t.log"
    status=0
    "$bin_dir/$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" \
        -timeout=30 -print_final_stats=1 -artifact_prefix="$root/fuzz/artifacts/$t/" \
        </dev/null >"$log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status)"
        failed+=("$t")
        echo "---- $t: last lines of the libFuzzer log ----" >&2
        tail -n 40 "$log" >&2
    fi
    printf '%-16s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
done
echo "fuzz: $mode run of ${#targets[@]} targets done in $((SECONDS - started)) s" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
