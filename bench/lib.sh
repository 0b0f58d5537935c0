# Shared by bench/sync.sh, rate_limit.sh and restart_idle.sh (sourced, not run).

# Starts the emulator (--discard) with its output in $work; sets emu_pid and base.
start_emulator() {
    "$bin" emulator --listen 127.0.0.1:0 --discard > "$work/emu.out" 2> "$work/emu.log" &
    emu_pid=$!
    for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.05; done
    base=$(sed -n 's/^listening on //p' "$work/emu.out")
}

# Prints the [cdf] section for the emulator at $base (secret in $BENCH_SECRET).
cdf_section() {
    cat <<CDF
[cdf]
base_url = "$base"
project = "demo"
allow_insecure_http = true
[cdf.auth]
token_url = "$base/oauth2/token"
client_id = "cdf-syncd-demo"
client_secret_env = "BENCH_SECRET"
CDF
}
