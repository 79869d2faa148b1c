# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the scripts that source it
#
# What the scripts of bench/ share; each sources it, none runs it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# Sourcing it builds and starts nothing. It moves to the repository's root, makes a work folder
# (removed at exit unless BENCH_KEEP=1), stops at exit the processes the script started, and sets
#   repo          the repository's root, the working directory from then on
#   script        bench/<name>.sh, the prefix of die's messages
#   work          the work folder
#   pids          the processes to stop (SIGTERM) at exit, with their process group if they lead one
#   load_before   the load average (1, 5, 15 min) when the script started
#   revision      the git revision checked out when the script started (short), or "unknown"
#   root_key      a fresh root key, shared by every `plannt serve` that start runs
#   serve_prefix  what start runs `plannt serve` under: empty, or e.g. (taskset -c 0)
#   wrk_prefix    what wrk_load runs wrk under: empty, or e.g. (taskset -c 1)
#   die_status    die's exit status: 1, unless the script sets another
#
# and defines these functions (each described where it is defined):
#   die MESSAGE…                              print "bench/<name>.sh: MESSAGE", exit $die_status
#   require TOOL…                             die unless every TOOL is installed
#   build PACKAGE [--example NAME]…           cargo build --profile $BENCH_PROFILE --locked; sets $release
#   start NAME [ENV=VALUE…] -- [ARGS…]        a `plannt serve` on a free loopback port
#   start_example NAME BINARY [ENV=VALUE…]    an example of crates/gateway on a free loopback port
#   stop NAME                                 stop the process started last
#   wrk_load NAME URL EXPECT [TOKENS_FILE]    a wrk run with bench/wrk.lua; sets r_*
#   load_average, cpu_model, random_hex, us MICROSECONDS, mib KIB

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit
script=bench/$(basename "$0")
die_status=1

# die MESSAGE…: prints "bench/<name>.sh: MESSAGE" on standard error and exits with $die_status.
die() {
    echo "$script: $*" >&2
    exit "$die_status"
}

# require TOOL…: dies, naming every one that is missing and the Debian packages that have them,
# unless each TOOL is installed (a command on the PATH, or an executable when it is a path).
require() {
    local tool missing=() packages=()
    for tool in "$@"; do
        if [[ $tool == */* ]]; then
            [[ -x $tool ]] && continue
        else
            command -v "$tool" >/dev/null 2>&1 && continue
        fi
        missing+=("$tool")
        case $tool in
            node) packages+=(nodejs) ;;
            taskset) packages+=(util-linux) ;;
            /usr/bin/time) packages+=(time) ;;
            python3) packages+=(python3 python3-venv) ;;
            *) packages+=("$(basename "$tool")") ;;
        esac
    done
    ((${#missing[@]} == 0)) ||
        die "missing: ${missing[*]} (on Debian: apt-get install ${packages[*]})"
}

# load_average: the load average over 1, 5 and 15 minutes, now.
load_average() {
    cut -d' ' -f1-3 /proc/loadavg
}

# cpu_model: the processor's name, as /proc/cpuinfo gives it.
cpu_model() {
    awk '/^model name/ { sub(/^model name[ \t]*: /, ""); print; exit }' /proc/cpuinfo
}

# random_hex: 32 random bytes as 64 hex digits.
random_hex() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

load_before=$(load_average)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
root_key=$(random_hex)
serve_prefix=()
wrk_prefix=()

work=$(mktemp -d "${TMPDIR:-/tmp}/plannt-$(basename "$0" .sh).XXXXXX")
pids=()

# terminate PID: SIGTERM to the process group PID leads, or to PID alone when it leads none.
terminate() {
    kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
}

cleanup() {
    local p
    for p in "${pids[@]}"; do
        terminate "$p"
    done
    if [[ ${BENCH_KEEP:-} == 1 ]]; then
        echo "work folder kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# build PACKAGE [--example NAME]…: cargo build --locked of the package's binaries, or of only
# the examples named, in the profile BENCH_PROFILE names: `release` by default (what users
# install: no symbols), or `profiling` (the same code with symbols and line tables, for `perf
# record`; Cargo.toml). Dies unless each is there (a package's binary has the package's name).
# Sets $release, the folder they are in: $release/NAME, $release/examples/NAME.
release=""
profile=${BENCH_PROFILE:-release}
build() {
    local package=$1 built=() bin
    shift
    local args=("$@")
    while (($#)); do
        [[ $1 == --example && $# -ge 2 ]] || die "build $package: not an --example NAME: $*"
        built+=("examples/$2")
        shift 2
    done
    ((${#built[@]})) || built=("$package")
    require cargo
    echo "==> cargo build --profile $profile --locked -p $package${args[*]:+ ${args[*]}}" >&2
    cargo build --profile "$profile" --locked -p "$package" "${args[@]}" >&2
    if [[ -z $release ]]; then
        release=$(cargo metadata --format-version 1 --no-deps |
            grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)/$profile
    fi
    for bin in "${built[@]}"; do
        [[ -x $release/$bin ]] || die "no binary at $release/$bin"
    done
}

# start NAME [ENV=VALUE…] -- [ARGS…]: `plannt serve ARGS…` (built by `build plannt`) on a free
# loopback port, with $root_key, a data folder of its own under $work/NAME, the ENV settings and
# none of the caller's PLANNT_CONFIG, PLANNT_STORE, PLANNT_LIGHTNING or PLANNT_LISTEN, logging to
# $work/NAME/log; run under ${serve_prefix[@]}. Sets $addr (HOST:PORT) and $pid.
start() {
    local name=$1
    shift
    local envs=()
    while (($#)) && [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    (($#)) || die "start $name: no -- before the arguments of plannt serve"
    shift
    [[ -x $release/plannt ]] || die "start $name: no plannt binary (build plannt first)"
    local dir=$work/$name
    mkdir -p "$dir/data"
    env -u PLANNT_CONFIG -u PLANNT_STORE -u PLANNT_LIGHTNING -u PLANNT_LISTEN \
        PLANNT_DATA_DIR="$dir/data" PLANNT_ROOT_KEY="$root_key" RUST_LOG=warn,plannt=info \
        "${envs[@]}" \
        "${serve_prefix[@]}" "$release/plannt" serve --listen 127.0.0.1:0 --log-json "$@" 2>"$dir/log" &
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

# start_example NAME BINARY [ENV=VALUE…]: an example on a free loopback port (PORT=0) that prints
# `listening on http://ADDR` on standard error, logging to $work/NAME.log. Sets $addr and $pid.
start_example() {
    local name=$1 bin=$2
    shift 2
    local log=$work/$name.log
    env PORT=0 "$@" "$bin" 2>"$log" &
    pid=$!
    pids+=("$pid")
    addr=""
    for _ in $(seq 600); do
        addr=$(sed -n 's|^listening on http://\([^ ]*:[0-9][0-9]*\).*|\1|p' "$log")
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || die "$name exited: $(cat "$log")"
        sleep 0.1
    done
    [[ -n $addr ]] || die "$name did not start in 60 s: $(cat "$log")"
    echo "==> $name: $(basename "$bin") on $addr (pid $pid)" >&2
}

# stop NAME: stops the process started last ($pid), with its process group if it leads one, and
# waits for it.
stop() {
    terminate "$pid"
    wait "$pid" 2>/dev/null || true
    echo "==> $1: stopped" >&2
}

# wrk_load NAME URL EXPECT [TOKENS_FILE]: wrk -t $threads -c $connections -d $duration --latency
# with bench/wrk.lua against URL, under ${wrk_prefix[@]}, every answer expected to have the status
# EXPECT, each request with the next token of TOKENS_FILE if given. Sets r_requests,
# r_duration_us, r_expected, r_other, r_other_status, r_reused, r_errors, r_p50_us, r_p90_us,
# r_p99_us, r_max_us (as bench/wrk.lua's RESULT line has them) and r_rps.
r_requests="" r_duration_us="" r_expected="" r_other="" r_other_status="" r_reused="" r_errors=""
r_p50_us="" r_p90_us="" r_p99_us="" r_max_us="" r_rps=""
# shellcheck disable=SC2154 # threads, connections and duration are the calling script's settings
wrk_load() {
    local name=$1 url=$2 expect=$3 tokens=${4:-}
    local out=$work/$name.wrk
    local args=("$expect")
    [[ -n $tokens ]] && args+=("$tokens" "$threads")
    echo "==> $name: wrk -t $threads -c $connections -d $duration --latency $url" >&2
    "${wrk_prefix[@]}" wrk -t "$threads" -c "$connections" -d "$duration" --latency \
        -s bench/wrk.lua "$url" -- "${args[@]}" >"$out"
    sed 's/^/    /' "$out" >&2
    local line field
    line=$(grep '^RESULT ' "$out") || die "$name: wrk printed no RESULT line"
    for field in requests duration_us expected other other_status reused errors p50_us p90_us p99_us max_us; do
        printf -v "r_$field" '%s' "$(sed -n "s/.* $field=\([^ ]*\).*/\1/p" <<<"$line")"
    done
    r_rps=$(awk -v n="$r_requests" -v us="$r_duration_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
}

# us MICROSECONDS: "850 µs" or "1.25 ms" (negative with "−").
us() {
    awk -v us="$1" 'BEGIN { a = us < 0 ? -us : us; s = us < 0 ? "−" : "";
        if (a >= 1000) printf "%s%.2f ms", s, a / 1000; else printf "%s%d µs", s, a }'
}

# mib KIB: KiB as MiB, one decimal.
mib() {
    awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'
}
