#!/usr/bin/env bash
# Accuracy of `[upload] max_rate` (the shared token bucket) over about a minute.
#
#   bench/rate_limit.sh [RATE_MIB] [SECONDS] [FILES]
#
# RATE_MIB: the limit in MiB/s (default 4). SECONDS: how long the transfer should take at
# that rate (default 60). FILES: how many files share the limit (default 4; each is
# RATE * SECONDS / FILES bytes, uploaded concurrently as 16 MiB parts, 4 in parallel).
# Builds the release binary, starts the emulator with --discard, runs `cdf-syncd sync
# --once` with max_rate set, and prints the achieved rate (all bytes / whole run, start
# to exit, so token, create and complete calls count against it) and its error against
# the limit. The initial burst (a quarter second of bytes) makes the achieved rate a
# little high; the run's fixed overhead makes it a little low.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rate_mib=${1:-4}
seconds=${2:-60}
files=${3:-4}
rate=$(( rate_mib * 1024 * 1024 ))
total=$(( rate * seconds ))
per_file=$(( total / files ))
total=$(( per_file * files ))

echo "building release binary..." >&2
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/cdf-syncd"

work=$(mktemp -d "${TMPDIR:-/tmp}/cdf-syncd-rate.XXXXXX")
emu_pid=""
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start_emulator

mkdir -p "$work/root"
for i in $(seq 1 "$files"); do
    head -c "$per_file" /dev/urandom > "$work/root/f$i.bin"
done
touch -d '1 minute ago' "$work/root"/*.bin

{
    cdf_section
    cat <<CFG
[[roots]]
id = "bench"
path = "$work/root"
directory_prefix = "/bench"
[sync]
stable_for = "1s"
[upload]
max_rate = "$rate_mib MiB/s"
[state]
dir = "$work/state"
[log]
level = "warn"
CFG
} > "$work/cfg.toml"

echo "emulator at $base (--discard); $files files, $total bytes, max_rate $rate_mib MiB/s" >&2
t0=$(date +%s.%N)
BENCH_SECRET=demo-secret "$bin" sync --once --config "$work/cfg.toml" >/dev/null
t1=$(date +%s.%N)
awk -v b="$total" -v t0="$t0" -v t1="$t1" -v r="$rate" 'BEGIN {
    t = t1 - t0; got = b / t
    printf "max_rate %.2f MiB/s, %d files, %d bytes in %.2f s: %.4f MiB/s achieved, error %+.2f %%\n",
        r / 1048576, '"$files"', b, t, got / 1048576, (got - r) / r * 100
}'
