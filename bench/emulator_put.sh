#!/usr/bin/env bash
# PUT throughput of the emulator's upload URLs on loopback, measured with curl.
#
#   bench/emulator_put.sh [SIZE] [PARTS] [RUNS]
#
# SIZE: bytes, or with a suffix KiB/MiB/GiB (default 1GiB). PARTS: parts of the multipart
# variant (default 8). RUNS: repetitions of each measurement (default 3).
#
# Builds the release binary, then, for an emulator started with `--discard` (hash only)
# and one with `--data DIR` (streamed to disk):
#   single-part: token -> POST files -> `curl -T file` to uploadUrl
#   multipart:   token -> POST files/initmultipartupload?parts=N -> N part PUTs in
#                parallel -> POST files/completemultipartupload
# Only the PUTs are timed (the part files are cut and earlier writes synced to disk before
# the clock starts; with --data the content ends in the page cache, as on a server). Each upload
# is then checked against /_emulator/files (size and SHA-256). Prints one MB/s line per
# run (MB = 10^6 bytes).
set -euo pipefail

cd "$(dirname "$0")/.."

size_arg=${1:-1GiB}
parts=${2:-8}
runs=${3:-3}

to_bytes() {
    local v=$1
    case "$v" in
        *GiB) echo $(( ${v%GiB} * 1024 * 1024 * 1024 )) ;;
        *MiB) echo $(( ${v%MiB} * 1024 * 1024 )) ;;
        *KiB) echo $(( ${v%KiB} * 1024 )) ;;
        *[!0-9]*) echo "bad size: $v (bytes, or NKiB/NMiB/NGiB)" >&2; return 1 ;;
        *) echo "$v" ;;
    esac
}
size=$(to_bytes "$size_arg")
part_size=$(( (size + parts - 1) / parts ))
if [ "$parts" -gt 1 ] && [ "$part_size" -lt $((5 * 1024 * 1024)) ]; then
    echo "parts of $part_size bytes are below CDF's 5 MiB minimum: use fewer parts or a bigger size" >&2
    exit 2
fi

echo "building release binary..." >&2
cargo build --release --quiet
bin="$PWD/target/release/cdf-syncd"

work=$(mktemp -d "${TMPDIR:-/tmp}/emulator-put.XXXXXX")
emu_pid=""
stop_emulator() {
    if [ -n "$emu_pid" ]; then
        kill "$emu_pid" 2>/dev/null || true
        wait "$emu_pid" 2>/dev/null || true
        emu_pid=""
    fi
}
cleanup() { stop_emulator; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }

echo "creating a $size-byte test file..." >&2
file="$work/payload.bin"
head -c "$size" /dev/urandom >"$file"
sha=$(sha256sum "$file" | cut -d' ' -f1)
mkdir "$work/parts"
split -b "$part_size" -d -a 3 "$file" "$work/parts/p"
part_files=("$work/parts"/p*) # split -d names sort in part order

# Starts the emulator with the given flags; sets $base. Fails after 20 s without the line.
start_emulator() {
    : >"$work/stdout"
    "$bin" emulator --listen 127.0.0.1:0 "$@" >"$work/stdout" 2>>"$work/emulator.log" &
    emu_pid=$!
    local deadline=$((SECONDS + 20))
    until grep -q '^listening on ' "$work/stdout"; do
        if ! kill -0 "$emu_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "emulator did not start ($*); log:" >&2
            tail -20 "$work/emulator.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    base=$(sed -n 's/^listening on //p' "$work/stdout" | head -1)
}

token() {
    curl -sS --fail-with-body "$base/oauth2/token" \
        -d grant_type=client_credentials -d client_id=cdf-syncd-demo -d client_secret=demo-secret |
        jq -r .access_token
}

api() { # api PATH JSON -> response body
    curl -sS --fail-with-body -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
        -d "$2" "$base/api/v1/projects/demo/$1"
}

check_file() { # check_file ID: size and sha256 as the emulator recorded them
    local id=$1 got deadline=$((SECONDS + 30))
    until got=$(curl -sS "$base/_emulator/files" |
        jq -r --argjson id "$id" '(if type == "array" then . else (.items // .files) end)[]
            | select(.id == $id) | select(.uploaded) | "\(.size) \(.sha256)"') && [ -n "$got" ]; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "file $id never became uploaded" >&2; exit 1; }
        sleep 0.1
    done
    # With --discard nothing is kept to hash a multipart file in part order: sha256 is null.
    [ "$got" = "$size $sha" ] || { [ "$mode" = discard ] && [ "$got" = "$size null" ]; } ||
        { echo "file $id: emulator has '$got', expected '$size $sha'" >&2; exit 1; }
}

single_part() { # prints seconds
    local res url id code t0 t1
    res=$(api files '{"name":"bench.bin","mimeType":"application/octet-stream"}')
    url=$(jq -r .uploadUrl <<<"$res")
    id=$(jq -r .id <<<"$res")
    sync # flush earlier writes first, so that their writeback does not slow this run
    t0=$(now)
    # No `Expect: 100-continue` (curl adds it above 1 MiB; the SDKs don't send it).
    code=$(curl -sS -o /dev/null -w '%{http_code}' -T "$file" \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' "$url")
    t1=$(now)
    [ "$code" = 200 ] || { echo "single-part PUT answered $code" >&2; exit 1; }
    check_file "$id"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

multipart() { # prints seconds
    local res id upload_id t0 t1 i pids=() codes
    res=$(api "files/initmultipartupload?parts=$parts" '{"name":"bench-mp.bin"}')
    id=$(jq -r .id <<<"$res")
    upload_id=$(jq -r .uploadId <<<"$res")
    mapfile -t urls < <(jq -r '.uploadUrls[]' <<<"$res")
    [ "${#urls[@]}" -eq "${#part_files[@]}" ] ||
        { echo "got ${#urls[@]} URLs for ${#part_files[@]} parts" >&2; exit 1; }
    sync
    t0=$(now)
    for i in "${!urls[@]}"; do
        curl -sS -o /dev/null -w '%{http_code}\n' -T "${part_files[$i]}" -H 'Expect:' "${urls[$i]}" \
            >"$work/code.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(now)
    codes=$(cat "$work"/code.* | sort -u | tr '\n' ' ')
    rm -f "$work"/code.*
    [ "$codes" = "200 " ] || { echo "part PUTs answered: $codes" >&2; exit 1; }
    api files/completemultipartupload "{\"id\":$id,\"uploadId\":\"$upload_id\"}" >/dev/null
    check_file "$id"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, curl $(curl --version | head -1 | cut -d' ' -f2)"
echo "# payload $size bytes; multipart: $parts parts of $part_size bytes in parallel; $runs runs each"
for mode in discard data; do
    if [ "$mode" = discard ]; then
        start_emulator --discard
    else
        rm -rf "$work/data"
        start_emulator --data "$work/data"
    fi
    tok=$(token)
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$emu_pid/stat")
    for variant in single-part multipart; do
        for run in $(seq 1 "$runs"); do
            if [ "$variant" = single-part ]; then secs=$(single_part); else secs=$(multipart); fi
            printf '%-8s %-11s run %d: %6s MB/s  (%d bytes in %ss)\n' \
                "--$mode" "$variant" "$run" "$(mbps "$size" "$secs")" "$size" "$secs"
        done
    done
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$emu_pid/stat")
    ticks=$(getconf CLK_TCK)
    awk -v c=$((cpu1 - cpu0)) -v t="$ticks" -v n=$((2 * runs)) -v b="$size" -v m="$mode" 'BEGIN {
        printf "--%-7s emulator CPU: %.2f s per GiB received (user+sys, all threads)\n", m, c / t / (n * b / 2^30) }'
    stop_emulator
    rm -rf "$work/data"
done
