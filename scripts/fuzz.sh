#!/usr/bin/env bash
# Run the cargo-fuzz targets of dataplane/fuzz, each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 30); no TARGET means every target.
# FUZZ_SANITIZER=none|address (default none) picks the sanitizer: the
# dataplane crate denies unsafe code, so AddressSanitizer finds little there
# and runs about ten times fewer inputs; both work on stable with this script.
# FUZZ_STRICT=1 also fails on the translator findings the xlate oracle
# otherwise skips (see known_finding in dataplane/fuzz/src/lib.rs).
# Crashes land in dataplane/fuzz/artifacts/<target>/; the exit status is
# non-zero when any target failed.
set -euo pipefail

secs="${1:-30}"
shift || true
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/dataplane"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only rustc flags (-Z sanitizer, coverage
# options); a stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s (sanitizer $sanitizer)" >&2
    if ! cargo fuzz run "$t" --sanitizer "$sanitizer" -- \
        -max_total_time="$secs" -print_final_stats=1; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (see dataplane/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${secs}s without a crash" >&2
