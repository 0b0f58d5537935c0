#!/usr/bin/env bash
# bench/restart_idle.sh N: sync N tiny files once, then time three more `sync --once` runs
# over the already-synced tree (start to idle; nothing is uploaded).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/cdf-syncd"
work=$(mktemp -d "${TMPDIR:-/tmp}/cdf-syncd-restart.XXXXXX")
emu_pid=""
start_emulator
trap 'kill $emu_pid 2>/dev/null; rm -rf "$work"' EXIT
n=$1
for i in $(seq 0 $((n - 1))); do d="$work/small/d$((i % 100))"; [ -d "$d" ] || mkdir -p "$d"; echo "$i" > "$d/f$i.bin"; done
find "$work/small" -type f -exec touch -d '1 minute ago' {} +
{
    cdf_section
    cat <<EOF
[[roots]]
id = "bench"
path = "$work/small"
[state]
dir = "$work/state"
[log]
level = "warn"
EOF
} > "$work/cfg.toml"
BENCH_SECRET=demo-secret "$bin" sync --once --config "$work/cfg.toml" >/dev/null
for k in 1 2 3; do
t0=$(date +%s.%N); BENCH_SECRET=demo-secret "$bin" sync --once --config "$work/cfg.toml" >/dev/null; t1=$(date +%s.%N)
echo "restart to idle, $n synced files: $(echo "$t1 - $t0" | bc) s"
done
