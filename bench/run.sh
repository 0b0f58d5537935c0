#!/usr/bin/env bash
# The benchmark suite: cdf-syncd against the official Python clients and a plain HTTP PUT,
# on the same machine, the same emulator (--discard) and the same files.
#
#   bench/run.sh [--quick] [--runs N] [--workloads LIST] [--no-report]
#
#   --quick       1 GiB large file, 5,000 small files, 200 latency files, 3 runs
#                 (default: 4 GiB, 20,000, 1,000, 5 runs)
#   --workloads   comma-separated subset of large,small,mixed,latency,restart,tracked,ratelimit
#                 (default all of them); `tune` sweeps the Python contenders' settings
#   --runs N      runs per contender per workload
#
# It builds cdf-syncd in release mode, installs the Python contenders in their own venvs
# (bench/.venv-sdk: cognite-sdk 8.22.0 + matplotlib; bench/.venv-extractor:
# cognite-extractor-utils 7.13.2, which pins cognite-sdk<8), generates every workload in a
# temporary directory ($TMPDIR; the full run needs ~4.5 GiB free, --quick ~1.7 GiB) and
# deletes it after, merges the measurements into bench/results.json, and regenerates the
# BENCHMARKS.md section and the PNG charts in bench/ from it (bench/report.py).
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
report=1
for a in "$@"; do [ "$a" = "--no-report" ] && report=0; done
suite_args=()
for a in "${args[@]}"; do [ "$a" != "--no-report" ] && suite_args+=("$a"); done

echo "==> cargo build --release" >&2
cargo build --release --locked --quiet
cargo build --release --locked --quiet --example bench_prefill # the `tracked` workload's store filler
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/cdf-syncd"
test -x "$bin"

venv() { # $1 = dir, rest = pip requirements
    local dir=$1
    shift
    if [ ! -x "$dir/bin/python" ]; then
        echo "==> python venv $dir: $*" >&2
        python3 -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
venv bench/.venv-sdk cognite-sdk==8.22.0 matplotlib
venv bench/.venv-extractor cognite-extractor-utils==7.13.2
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdf-syncd-suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "==> workloads in $work ($(df -h --output=avail "$work" | tail -1 | tr -d ' ') free)" >&2

bench/.venv-sdk/bin/python bench/suite.py --bin "$bin" --work "$work" \
    --results bench/results.json --command "bench/run.sh ${suite_args[*]:-}" "${suite_args[@]}"
if [ "$report" = 1 ]; then
    bench/.venv-sdk/bin/python bench/report.py bench/results.json BENCHMARKS.md
fi
