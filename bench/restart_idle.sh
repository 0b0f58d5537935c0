#!/usr/bin/env bash
# bench/restart_idle.sh N: sync N tiny files once, then time three more `sync --once` runs
# over the already-synced tree (start to idle; nothing is uploaded).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/cdf-syncd"
work=$(mktemp -d "${TMPDIR:-/tmp}/cdf-syncd-restart.XXXXXX")
"$bin" emulator --listen 127.0.0.1:0 --discard > "$work/emu.out" 2> "$work/emu.log" &
emu=$!
trap 'kill $emu 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$work/emu.out")
n=$1
for i in $(seq 0 $((n - 1))); do d="$work/small/d$((i % 100))"; [ -d "$d" ] || mkdir -p "$d"; echo "$i" > "$d/f$i.bin"; done
find "$work/small" -type f -exec touch -d '1 minute ago' {} +
cat > "$work/cfg.toml" <<EOF
[cdf]
base_url = "$base"
project = "demo"
allow_insecure_http = true
[cdf.auth]
token_url = "$base/oauth2/token"
client_id = "cdf-syncd-demo"
client_secret_env = "BENCH_SECRET"
[[roots]]
id = "bench"
path = "$work/small"
[state]
dir = "$work/state"
[log]
level = "warn"
EOF
BENCH_SECRET=demo-secret "$bin" sync --once --config "$work/cfg.toml" >/dev/null
for k in 1 2 3; do
t0=$(date +%s.%N); BENCH_SECRET=demo-secret "$bin" sync --once --config "$work/cfg.toml" >/dev/null; t1=$(date +%s.%N)
echo "restart to idle, $n synced files: $(echo "$t1 - $t0" | bc) s"
done
