#!/usr/bin/env bash
# Plannt's gateway side by side with two Python L402 servers from PyPI and a bare axum proxy.
#
#   bench/side-by-side.sh      build --release, run every measurement, print a Markdown table
#
# Everything listens on 127.0.0.1 and is driven by the same wrk -t 2 -c 32 -d 10s --latency with
# bench/wrk.lua, which counts every answer whose status is not the expected one:
#   challenges  GET /v1/demo without a credential (402): plannt serve (dev network, challenge
#               rate limit off), l402kit (DevProvider) and lightning-toll (a mock wallet), the
#               two Python apps of bench/python under uvicorn (BENCH_PY_WORKERS workers, default 2,
#               uvloop + httptools)
#   paid        GET /v1/demo with a fresh token each (200): plannt serve's built-in demo handler
#               (memory spent store) and both Python apps; plannt's tokens are bought beforehand
#               by bench/mint.mjs (402, then a dev-network payment), the Python apps' by
#               bench/python/mint.py (402, then the app's /_dev/pay)
#   bare route  the Python apps' unprotected GET /v1/free (the same answer): FastAPI's own speed
#   proxy       plannt serve routing the paid /v1/demo to an upstream (`upstream = …`, memory
#               store) against crates/gateway/examples/bare_proxy.rs, a bare axum reverse proxy to
#               the same upstream (crates/gateway/examples/demo_upstream.rs), and the upstream
#               alone, to show it is not the bottleneck
# and prints the ratios: plannt / each Python server for challenges and paid requests (the goal:
# 10x at least), plannt's paid proxy route / the bare proxy.
#
# Needs wrk, node, curl, python3 (with venv). The Python packages (bench/python/requirements.txt)
# go into a venv under ${PLANNT_CACHE:-<repo>/.cache}/bench-venv, reinstalled when that file
# changes. Settings (environment): BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
# BENCH_PY_WORKERS (2), BENCH_MAX_TOKENS (1,500,000), BENCH_KEEP=1 keeps the work folder (logs,
# tokens), BENCH_REVISION names the revision measured when this is not a git checkout.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cache=${PLANNT_CACHE:-$repo/.cache}

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
py_workers=${BENCH_PY_WORKERS:-2}
max_tokens=${BENCH_MAX_TOKENS:-1500000}
secs=${duration%s}

require wrk node curl python3

# --- builds and installs ---------------------------------------------------------------------

build plannt
build plannt-gateway --example bare_proxy --example demo_upstream
bare_proxy=$release/examples/bare_proxy
demo_upstream=$release/examples/demo_upstream

venv=$cache/bench-venv
stamp=$( (cat bench/python/requirements.txt; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ $(cat "$venv/.plannt-stamp" 2>/dev/null) != "$stamp" ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "==> Python venv $venv (bench/python/requirements.txt)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    PIP_CACHE_DIR=$cache/pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r bench/python/requirements.txt >&2
    echo "$stamp" >"$venv/.plannt-stamp"
fi
py_versions=$("$venv/bin/python" -c '
from importlib.metadata import version as v
print(", ".join(f"{p} {v(p)}" for p in ("l402kit", "lightning-toll", "fastapi", "uvicorn", "uvloop", "httptools")))')
py_version=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')

# --- starting the Python apps ------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for NAME URL LOG: waits until URL answers (any status), or the process $pid dies.
wait_for() {
    local name=$1 url=$2 log=$3
    for _ in $(seq 600); do
        curl -s -o /dev/null "$url" && return 0
        kill -0 "$pid" 2>/dev/null || die "$name exited: $(cat "$log")"
        sleep 0.1
    done
    die "$name did not answer in 60 s: $(cat "$log")"
}

# start_python NAME MODULE [ENV=VALUE…]: a bench/python app under uvicorn, in a process group of
# its own (setsid) so that stopping it stops uvicorn's workers with their supervisor; sets $addr
# and $pid.
start_python() {
    local name=$1 module=$2
    shift 2
    local port log=$work/$name.log
    port=$(free_port)
    setsid env "$@" "$venv/bin/uvicorn" --app-dir bench/python "$module:app" \
        --host 127.0.0.1 --port "$port" --workers "$py_workers" --loop uvloop --http httptools \
        --no-access-log --log-level warning 2>"$log" &
    pid=$!
    pids+=("$pid")
    addr=127.0.0.1:$port
    wait_for "$name" "http://$addr/v1/free" "$log"
    echo "==> $name: uvicorn $module:app, $py_workers workers, on $addr (pid $pid)" >&2
}

# --- measuring -------------------------------------------------------------------------------

rows=()
other_total=0
# row WHAT SERVER EXPECT: a table row from the last wrk_load.
row() {
    local other=$r_other
    [[ $r_other != 0 ]] && other="**$r_other** ($r_other_status)"
    other_total=$((other_total + r_other + r_errors))
    rows+=("| $1 | $2 | $3 | $r_requests | $r_rps | $r_expected | $other | $r_reused | $r_errors | $(us "$r_p50_us") | $(us "$r_p99_us") |")
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# tokens_for RPS: how many tokens a run at RPS needs (1.1x, plus a margin), at most max_tokens.
tokens_for() {
    local n
    n=$(awk -v rps="$1" -v s="$secs" 'BEGIN { printf "%d", rps * s * 1.1 + 1000 }')
    ((n > max_tokens)) && n=$max_tokens
    echo "$n"
}

# --- tokens ----------------------------------------------------------------------------------------
# The runs that are compared follow each other (challenges, then paid, then the proxies), so a
# change in the machine's load falls on both sides alike. Tokens are bought first.

# A 3 s calibration of plannt's route served public sizes its token supply (as bench/gateway.sh).
cat >"$work/public.toml" <<'EOF'
[[routes]]
id = "demo"
method = "GET"
path = "/v1/demo"
handler = "demo"
EOF
start calibration -- --store memory --config "$work/public.toml"
wrk -t "$threads" -c "$connections" -d 3s -s bench/wrk.lua "http://$addr/v1/demo" -- 200 \
    >"$work/calibration.wrk"
stop calibration
calibration=$(grep '^RESULT ' "$work/calibration.wrk")
calib_rps=$(awk -v n="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$calibration")" \
    -v us="$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$calibration")" \
    'BEGIN { printf "%.0f", n / (us / 1e6) }')
plannt_tokens=$(tokens_for "$calib_rps")
echo "==> calibration: the public route at $calib_rps req/s; buying $plannt_tokens tokens" >&2

start mint PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
began=$SECONDS
node bench/mint.mjs "http://$addr" "$plannt_tokens" 16 "$work/plannt-tokens.txt"
plannt_mint_secs=$((SECONDS - began))
stop mint
[[ $(wc -l <"$work/plannt-tokens.txt") == "$plannt_tokens" ]] || die "mint.mjs wrote too few tokens"

# The Python servers run from here to their paid runs (their dev wallets keep the preimages in
# memory). Their unprotected route, measured first, sizes their token supply.
start_python l402kit l402kit_app
l402kit_addr=$addr l402kit_pid=$pid
start_python toll toll_app TOLL_SECRET="$(random_hex)"
toll_addr=$addr toll_pid=$pid
l402kit_label="l402kit (DevProvider), uvicorn × $py_workers"
toll_label="lightning-toll (mock wallet), uvicorn × $py_workers"

wrk_load l402kit-free "http://$l402kit_addr/v1/free" 200
row "bare route (no paywall)" "$l402kit_label" 200
free_l402kit=$r_rps
wrk_load toll-free "http://$toll_addr/v1/free" 200
row "bare route (no paywall)" "$toll_label" 200
free_toll=$r_rps

py_mint=()
for name in l402kit toll; do
    addr_var=${name}_addr free_var=free_$name
    n=$(tokens_for "${!free_var}")
    echo "==> $name: buying $n tokens" >&2
    began=$SECONDS
    "$venv/bin/python" bench/python/mint.py "http://${!addr_var}" "$n" 16 "$work/$name-tokens.txt"
    py_mint+=("$name $n in $((SECONDS - began)) s")
done

# --- challenges --------------------------------------------------------------------------------------

start plannt-challenges PLANNT_CHALLENGES_PER_SECOND=0 -- --store memory
wrk_load plannt-challenges "http://$addr/v1/demo" 402
stop plannt-challenges
row "challenges" "plannt serve (dev network)" 402
ch_plannt=$r_rps

wrk_load l402kit-challenges "http://$l402kit_addr/v1/demo" 402
row "challenges" "$l402kit_label" 402
ch_l402kit=$r_rps

wrk_load toll-challenges "http://$toll_addr/v1/demo" 402
row "challenges" "$toll_label" 402
ch_toll=$r_rps

# --- paid --------------------------------------------------------------------------------------------

start plannt-paid -- --store memory
wrk_load plannt-paid "http://$addr/v1/demo" 200 "$work/plannt-tokens.txt"
stop plannt-paid
row "paid" "plannt serve (memory store, built-in handler)" 200
paid_plannt=$r_rps

wrk_load l402kit-paid "http://$l402kit_addr/v1/demo" 200 "$work/l402kit-tokens.txt"
row "paid" "$l402kit_label" 200
paid_l402kit=$r_rps
pid=$l402kit_pid
stop l402kit

wrk_load toll-paid "http://$toll_addr/v1/demo" 200 "$work/toll-tokens.txt"
row "paid" "$toll_label" 200
paid_toll=$r_rps
pid=$toll_pid
stop toll

# --- the proxy: plannt serve's paid upstream route against a bare axum proxy -----------------------

start_example upstream "$demo_upstream"
upstream_addr=$addr upstream_pid=$pid
wrk_load upstream "http://$upstream_addr/v1/demo" 200 "$work/plannt-tokens.txt"
row "upstream alone" "examples/demo_upstream" 200

start_example bare-proxy "$bare_proxy" UPSTREAM="http://$upstream_addr"
wrk_load bare-proxy "http://$addr/v1/demo" 200 "$work/plannt-tokens.txt"
stop bare-proxy
row "proxy, no paywall (the limit)" "examples/bare_proxy → upstream" 200
proxy_bare=$r_rps

cat >"$work/proxy.toml" <<EOF
[[routes]]
id = "demo"
method = "GET"
path = "/v1/demo"
price_sats = 21
upstream = "http://$upstream_addr"
EOF
start plannt-proxy -- --store memory --config "$work/proxy.toml"
wrk_load plannt-proxy "http://$addr/v1/demo" 200 "$work/plannt-tokens.txt"
stop plannt-proxy
row "paid, proxied" "plannt serve (memory store) → upstream" 200
proxy_plannt=$r_rps
pid=$upstream_pid
stop upstream

# --- the report ------------------------------------------------------------------------------------

verdict() { awk -v a="$1" -v b="$2" -v goal="$3" 'BEGIN { print (a / b >= goal) ? "yes" : "no" }'; }

cat <<EOF

## Side by side, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model), $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory, Linux $(uname -r); load average at the start: $load_before, at the end: $(load_average).
Revision: ${BENCH_REVISION:-$revision}; $(rustc --version); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); Python $py_version: $py_versions.
Command: \`bench/side-by-side.sh\` (wrk -t $threads -c $connections -d $duration --latency for every run, loopback; wrk and the servers share the cores).
Tokens bought beforehand, each sent once: plannt $plannt_tokens in $plannt_mint_secs s; $(IFS=';'; echo "${py_mint[*]}" | sed 's/;/; /g').

| run | server | expected | requests | req/s | answered as expected | other answers | token lists restarted | socket errors | p50 | p99 |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

| ratio | value | goal | met? |
|---|---:|---:|---|
| challenges/s, plannt / l402kit | $(ratio "$ch_plannt" "$ch_l402kit")× | 10× | $(verdict "$ch_plannt" "$ch_l402kit" 10) |
| challenges/s, plannt / lightning-toll | $(ratio "$ch_plannt" "$ch_toll")× | 10× | $(verdict "$ch_plannt" "$ch_toll" 10) |
| paid/s, plannt / l402kit | $(ratio "$paid_plannt" "$paid_l402kit")× | 10× | $(verdict "$paid_plannt" "$paid_l402kit" 10) |
| paid/s, plannt / lightning-toll | $(ratio "$paid_plannt" "$paid_toll")× | 10× | $(verdict "$paid_plannt" "$paid_toll" 10) |
| paid/s proxied, plannt / bare axum proxy | $(ratio2 "$proxy_plannt" "$proxy_bare") | (as high as it goes) | |
| FastAPI bare route, l402kit app / lightning-toll app | $free_l402kit / $free_toll req/s | | |

Answers not as expected, over every run (other statuses and socket errors): $other_total. "Token lists
restarted" counts wrk threads that ran out of tokens and began their list again (a paid run's
replays, which must then fail); the upstream and the bare proxy ignore the header they carry.
EOF
