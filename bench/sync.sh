#!/usr/bin/env bash
# cdf-syncd's upload throughput and memory against the emulator (--discard), next to a
# plain HTTP PUT of the same file to the same emulator (the practical limit), and the
# small-file rate.
#
#   bench/sync.sh [LARGE_SIZE] [SMALL_FILES]
#
# LARGE_SIZE: the large file (default 2GiB; suffix MiB/GiB). SMALL_FILES: how many 8 KiB
# files (default 10000). HASH=sha256 sets `[sync] hash` (default: the config default).
# Prints one line per measurement; peak RSS from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

size_arg=${1:-2GiB}
small=${2:-10000}
case "$size_arg" in
    *GiB) size=$(( ${size_arg%GiB} * 1024 * 1024 * 1024 )) ;;
    *MiB) size=$(( ${size_arg%MiB} * 1024 * 1024 )) ;;
    *) size=$size_arg ;;
esac

echo "building release binary..." >&2
cargo build --release --quiet
bin="$PWD/target/release/cdf-syncd"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdf-syncd-bench.XXXXXX")
emu_pid=""
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start_emulator
echo "emulator at $base (--discard)"

hash_line=""
[ -n "${HASH:-}" ] && hash_line="hash = \"$HASH\""
config() { # $1 = root dir, $2 = state dir
    {
        cdf_section
        cat <<EOF
[[roots]]
id = "bench"
path = "$1"
directory_prefix = "/bench"
[sync]
stable_for = "1s"
$hash_line
[state]
dir = "$2"
[log]
level = "warn"
EOF
    } > "$work/cfg.toml"
}

now() { date +%s.%N; }
rate() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f MB/s", b / t / 1e6 }'; }

# Large file: cdf-syncd, then a plain PUT of the same bytes.
mkdir -p "$work/large"
head -c "$size" /dev/urandom > "$work/large/big.bin"
touch -d '1 minute ago' "$work/large/big.bin"
config "$work/large" "$work/state-large"
t0=$(now)
BENCH_SECRET=demo-secret /usr/bin/time -f '%M %e %U %S' -o "$work/time" "$bin" sync --once --config "$work/cfg.toml" >/dev/null
t1=$(now)
read -r rss_kb _ user sys < "$work/time"
echo "cdf-syncd large file ($size_arg): $(rate "$size" "$(echo "$t1 - $t0" | bc)"), peak RSS $((rss_kb / 1024)) MiB, CPU $(echo "$user + $sys" | bc) s"

token=$(curl -s -X POST "$base/oauth2/token" -d grant_type=client_credentials -d client_id=cdf-syncd-demo -d client_secret=demo-secret | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
url=$(curl -s -X POST "$base/api/v1/projects/demo/files" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"name":"plain.bin","mimeType":"application/octet-stream"}' | sed -n 's/.*"uploadUrl":"\([^"]*\)".*/\1/p')
t0=$(now)
/usr/bin/time -f '%M %e %U %S' -o "$work/time" curl -s -o /dev/null -T "$work/large/big.bin" -H 'Content-Type: application/octet-stream' "$url"
t1=$(now)
read -r _ _ user sys < "$work/time"
echo "plain PUT (curl -T) large file: $(rate "$size" "$(echo "$t1 - $t0" | bc)"), CPU $(echo "$user + $sys" | bc) s"
rm -f "$work/large/big.bin"

# Small files: $small files of 8 KiB in a nested tree.
for i in $(seq 0 $((small - 1))); do
    d="$work/small/d$((i % 100))"
    [ -d "$d" ] || mkdir -p "$d"
    head -c 8192 /dev/urandom > "$d/f$i.bin"
done
find "$work/small" -type f -exec touch -d '1 minute ago' {} +
config "$work/small" "$work/state-small"
t0=$(now)
BENCH_SECRET=demo-secret /usr/bin/time -f '%M %e %U %S' -o "$work/time" "$bin" sync --once --config "$work/cfg.toml" >/dev/null
t1=$(now)
read -r rss_kb _ user sys < "$work/time"
awk -v n="$small" -v t="$(echo "$t1 - $t0" | bc)" -v r="$((rss_kb / 1024))" \
    'BEGIN { printf "cdf-syncd %d small files (8 KiB): %.0f files/s, peak RSS %d MiB\n", n, n / t, r }'
du -sb "$work/state-small" | awk -v n="$small" '{ printf "job store after %d files: %d bytes (%.0f bytes per file)\n", n, $1, $1 / n }'
