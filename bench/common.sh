# What bench/flood.sh and bench/soak.sh share; sourced by them, not run. It sets up the work
# folder (removed at exit unless BENCH_KEEP=1) and the processes to stop at exit, builds
# `plannt` and `plannt-load` with --release, draws one root key, and defines:
#   die MESSAGE…                            print "bench/<script>: MESSAGE" and exit 2
#   start NAME [ENV=VALUE…] -- [ARGS…]      a `plannt serve` on a free loopback port, run under
#                                           ${serve_prefix[@]} (empty, or e.g. taskset -c 0);
#                                           sets $addr and $pid
# and the variables load_before, revision, work, plannt, load, root_key.

script=bench/$(basename "$0")

die() {
    echo "$script: $*" >&2
    exit 2
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
work=$(mktemp -d "${TMPDIR:-/tmp}/plannt-$(basename "$0" .sh).XXXXXX")
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

echo "==> cargo build --release --locked -p plannt -p plannt-load" >&2
cargo build --release --locked -p plannt -p plannt-load >&2
target_dir=$(cargo metadata --format-version 1 --no-deps |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
plannt=$target_dir/release/plannt
load=$target_dir/release/plannt-load
[[ -x $plannt && -x $load ]] || die "no binaries under $target_dir/release"

root_key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
serve_prefix=()

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
        "${serve_prefix[@]}" "$plannt" serve --listen 127.0.0.1:0 --log-json "$@" 2>"$dir/log" &
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
