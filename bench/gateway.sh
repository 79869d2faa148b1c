#!/usr/bin/env bash
# The gateway's load harness: `plannt serve` (release build) on loopback under wrk.
#
#   bench/gateway.sh            build --release once, run every measurement, print a Markdown table
#
# Measures, each with wrk -t 2 -c 32 -d 10s --latency against 127.0.0.1 only:
#   challenges   GET /v1/demo without a credential: 402s with a fresh dev invoice each
#                (the challenge rate limit off: PLANNT_CHALLENGES_PER_SECOND=0)
#   bare         the same route served public (no price) by the same server: the baseline
#   bare axum    crates/gateway/examples/axum_layer.rs, when present: its free `GET /`, a bare
#                axum handler behind the layer's pass-through (no route of its table matches)
#   paid memory  GET /v1/demo with a token per request, memory spent store
#   paid sqlite  the same with the SQLite spent store (WAL, synchronous=FULL, group commit)
# and the peak RSS (VmHWM) of each gateway process. Every paid request carries a token of its
# own, bought beforehand by bench/mint.mjs (a 402, then a dev-network payment), and must be
# answered 200: anything else is counted and printed. The gateways share one root key
# (PLANNT_ROOT_KEY) so the tokens bought from one work on the others.
#
# Needs wrk (apt-get install wrk), node (for bench/mint.mjs), curl. Settings (environment):
#   BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#   BENCH_TOKENS (default: 1.1 x what a 3 s calibration of the bare route says 10 s need;
#   at most BENCH_MAX_TOKENS, 1,500,000), BENCH_KEEP=1 keeps the work folder (logs, tokens),
#   BENCH_REVISION names the revision measured when this is not a git checkout.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
max_tokens=${BENCH_MAX_TOKENS:-1500000}

die() {
    echo "bench/gateway.sh: $*" >&2
    exit 1
}

for tool in wrk node curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (wrk: apt-get install wrk)"
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d "${TMPDIR:-/tmp}/plannt-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ ${BENCH_KEEP:-} == 1 ]]; then
        echo "work folder kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "==> cargo build --release --locked -p plannt" >&2
cargo build --release --locked -p plannt >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
plannt=$target_dir/release/plannt
[[ -x $plannt ]] || die "no binary at $plannt"
axum_example=""
if [[ -f crates/gateway/examples/axum_layer.rs ]]; then
    echo "==> cargo build --release --locked -p plannt-gateway --example axum_layer" >&2
    cargo build --release --locked -p plannt-gateway --example axum_layer >&2
    axum_example=$target_dir/release/examples/axum_layer
fi

root_key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

# start NAME [ENV=VALUE…] -- [ARGS…]: starts a gateway on a free loopback port with a data
# folder of its own; sets $addr and $pid.
start() {
    local name=$1
    shift
    local envs=()
    while [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    local dir=$work/$name
    mkdir -p "$dir/data"
    env -u PLANNT_CONFIG -u PLANNT_STORE -u PLANNT_LIGHTNING -u PLANNT_LISTEN \
        PLANNT_DATA_DIR="$dir/data" PLANNT_ROOT_KEY="$root_key" RUST_LOG=warn,plannt=info \
        "${envs[@]}" \
        "$plannt" serve --listen 127.0.0.1:0 --log-json "$@" 2>"$dir/log" &
    pid=$!
    pids+=("$pid")
    addr=""
    for _ in $(seq 600); do
        addr=$(grep -o '"message":"plannt gateway listening","addr":"[^"]*"' "$dir/log" |
            cut -d'"' -f8 || true)
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || die "$name: plannt serve exited: $(cat "$dir/log")"
        sleep 0.1
    done
    [[ -n $addr ]] || die "$name: plannt serve did not start in 60 s: $(cat "$dir/log")"
    echo "==> $name: plannt serve $* on $addr (pid $pid)" >&2
}

# stop NAME: prints the peak RSS of the gateway started last (kB), then stops it.
stop() {
    local name=$1
    rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || true
    echo "==> $name: stopped, peak RSS $(mib "$rss_kb") MiB" >&2
}

# load NAME URL EXPECT [TOKENS_FILE]: runs wrk; sets the result variables r_*.
load() {
    local name=$1 url=$2 expect=$3 tokens=${4:-}
    local out=$work/$name.wrk
    local args=("$expect")
    [[ -n $tokens ]] && args+=("$tokens" "$threads")
    echo "==> $name: wrk -t $threads -c $connections -d $duration --latency $url" >&2
    wrk -t "$threads" -c "$connections" -d "$duration" --latency \
        -s bench/wrk.lua "$url" -- "${args[@]}" >"$out"
    sed 's/^/    /' "$out" >&2
    local line
    line=$(grep '^RESULT ' "$out") || die "$name: wrk printed no RESULT line"
    for field in requests duration_us expected other other_status reused errors p50_us p90_us p99_us max_us; do
        printf -v "r_$field" '%s' "$(sed -n "s/.* $field=\([^ ]*\).*/\1/p" <<<"$line")"
    done
    r_rps=$(awk -v n="$r_requests" -v us="$r_duration_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
}

rows=()
# row LABEL: a table row from the last load and stop.
row() {
    local other=$r_other
    [[ $r_other != 0 ]] && other="**$r_other** ($r_other_status)"
    rows+=("| $1 | $r_requests | $r_rps | $r_expected | $other | $r_errors | $(us "$r_p50_us") | $(us "$r_p99_us") | $(us "$r_max_us") | $(mib "$rss_kb") |")
}
us() {
    awk -v us="$1" 'BEGIN { a = us < 0 ? -us : us; s = us < 0 ? "−" : "";
        if (a >= 1000) printf "%s%.2f ms", s, a / 1000; else printf "%s%d µs", s, a }'
}
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# --- the bare route, calibrated first to size the token supply ----------------------------------

cat >"$work/bare.toml" <<'EOF'
# The demo route without a price: the same server, route table, handler and layers, no paywall work.
[[routes]]
id = "demo"
method = "GET"
path = "/v1/demo"
handler = "demo"
description = "The demo answer, public: the baseline"
EOF
start bare -- --store memory --config "$work/bare.toml"
bare_addr=$addr bare_pid=$pid
wrk -t "$threads" -c "$connections" -d 3s -s bench/wrk.lua "http://$bare_addr/v1/demo" -- 200 \
    >"$work/calibration.wrk"
calibration=$(grep '^RESULT ' "$work/calibration.wrk")
calib_requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$calibration")
calib_us=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$calibration")
secs=${duration%s}
tokens_needed=$(awk -v n="$calib_requests" -v us="$calib_us" -v s="$secs" \
    'BEGIN { printf "%d", n / (us / 1e6) * s * 1.1 + 1000 }')
tokens=${BENCH_TOKENS:-$tokens_needed}
((tokens > max_tokens)) && tokens=$max_tokens
echo "==> calibration: bare route $calib_requests requests in $((calib_us / 1000)) ms; buying $tokens tokens" >&2

# --- buying the tokens ---------------------------------------------------------------------------

start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
mint_began=$SECONDS
node bench/mint.mjs "http://$addr" "$tokens" 16 "$work/tokens.txt"
mint_secs=$((SECONDS - mint_began))
stop mint
[[ $(wc -l <"$work/tokens.txt") == "$tokens" ]] || die "mint wrote $(wc -l <"$work/tokens.txt") tokens, not $tokens"

# --- (c) bare, with the same Authorization headers (ignored on a public route) -------------------

pid=$bare_pid
load bare "http://$bare_addr/v1/demo" 200 "$work/tokens.txt"
stop bare
row "bare: public route, no paywall (baseline)"
bare_rps=$r_rps bare_p50=$r_p50_us bare_p99=$r_p99_us

# --- (c) a bare axum handler: the tower-layer example's free route ------------------------------

if [[ -n $axum_example ]]; then
    port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
    PORT=$port "$axum_example" 2>"$work/axum.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$port/" >/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "axum_layer exited: $(cat "$work/axum.log")"
        sleep 0.1
    done
    echo "==> bare-axum: examples/axum_layer on 127.0.0.1:$port (pid $pid)" >&2
    load bare-axum "http://127.0.0.1:$port/" 200 "$work/tokens.txt"
    stop bare-axum
    row "bare axum: examples/axum_layer, free GET /"
fi

# --- (b) paid, memory store ----------------------------------------------------------------------

start paid-memory -- --store memory
load paid-memory "http://$addr/v1/demo" 200 "$work/tokens.txt"
stop paid-memory
row "paid: memory store"
mem_rps=$r_rps mem_p50=$r_p50_us mem_p99=$r_p99_us mem_other=$r_other mem_reused=$r_reused

# --- (b) paid, SQLite store ----------------------------------------------------------------------

start paid-sqlite -- --store sqlite
load paid-sqlite "http://$addr/v1/demo" 200 "$work/tokens.txt"
stop paid-sqlite
row "paid: SQLite store"
sql_rps=$r_rps sql_p50=$r_p50_us sql_p99=$r_p99_us sql_other=$r_other sql_reused=$r_reused

# --- (a) challenges --------------------------------------------------------------------------------

start challenges PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
load challenges "http://$addr/v1/demo" 402
stop challenges
row "challenges: 402 + dev invoice"
ch_rps=$r_rps

# --- the report ------------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
added() { us "$(awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; printf "%d", d }')"; }

cat <<EOF

## Gateway load, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory; load average at the start: $load_before, at the end: $(cut -d' ' -f1-3 /proc/loadavg).
Revision: ${BENCH_REVISION:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}; $(rustc --version); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2).
Command: \`bench/gateway.sh\` (wrk -t $threads -c $connections -d $duration --latency, loopback, wrk and the gateway share the cores).
Tokens: $tokens bought in ${mint_secs} s (a 402 and a dev payment each), each sent once.

| run | requests | req/s | answered as expected | other answers | socket errors | p50 | p99 | max | peak RSS (MiB) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

- paid/bare throughput: memory $(ratio "$mem_rps" "$bare_rps"), SQLite $(ratio "$sql_rps" "$bare_rps")
- latency the paywall adds (paid − bare): memory p50 $(added "$mem_p50" "$bare_p50"), p99 $(added "$mem_p99" "$bare_p99"); SQLite p50 $(added "$sql_p50" "$bare_p50"), p99 $(added "$sql_p99" "$bare_p99")
- challenges: $ch_rps/s
- paid requests not answered 200: memory $mem_other, SQLite $sql_other; thread token lists started over: memory $mem_reused, SQLite $sql_reused
EOF
