#!/usr/bin/env bash
# A soak of `plannt serve` under mixed traffic, with its RSS and spent-set size over time.
#
#   bench/soak.sh               10 minutes; SOAK_SECS=60 bench/soak.sh for a minute
#
# Starts two `plannt serve` (release, loopback) sharing one root key, both with short-lived tokens
# (invoice_expiry_secs 10 + token_lifetime_secs 20: 30 s, so the gateway purges its spent set
# every 30 s): a mint (no challenge limit) whose dev network sells tokens during the run, and the
# gateway under load (SOAK_STORE, default sqlite; challenges_per_second 5, burst 20). Then
# bench/load (plannt-load soak), every role from a loopback address of its own:
#   paid     SOAK_PAID_RATE req/s (300) from 127.0.0.1, each token bought during the run, used once
#   replay   4 req/s from 127.0.0.4: spent tokens again (402 spent, or 429 past its challenges)
#   flood    SOAK_FLOOD_RATE req/s (1000) without a credential from 127.0.0.2 (402, then 429)
#   garbage  SOAK_FLOOD_RATE req/s (1000) of malformed and forged credentials from 127.0.0.3 (401)
# sampling the gateway's VmRSS, VmHWM and its plannt_spent_tokens gauge every SOAK_SAMPLE_SECS
# (5) into a CSV, then plots RSS and the spent set over time into SOAK_PLOT (docs/soak.png) with
# matplotlib from a venv under ${PLANNT_CACHE:-.cache} (set SOAK_PLOT= to skip the plot).
# Exits 1 when the run ends with RSS or the spent set higher in the last third than in the middle
# third (by more than 10 % and 20 %), or a role answered otherwise than it should; 2 on failure.
# BENCH_KEEP=1 keeps the work folder (logs, CSV).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
die_status=2 # 1 is a run that did not stay flat

secs=${SOAK_SECS:-600}
paid_rate=${SOAK_PAID_RATE:-300}
flood_rate=${SOAK_FLOOD_RATE:-1000}
sample_secs=${SOAK_SAMPLE_SECS:-5}
store=${SOAK_STORE:-sqlite}
plot=${SOAK_PLOT-docs/soak.png}
cache=${PLANNT_CACHE:-.cache}
[[ -z $plot ]] || require python3

build plannt
build plannt-load
load=$release/plannt-load

# Tokens valid 30 s, so that purging shows within the run.
short_lived=(PLANNT_INVOICE_EXPIRY_SECS=10 PLANNT_TOKEN_LIFETIME_SECS=20)
start mint "${short_lived[@]}" PLANNT_CHALLENGES_PER_SECOND=0 PLANNT_DEV_STARTING_BALANCE_SATS=100000000000 -- --store memory
mint_addr=$addr
start gateway "${short_lived[@]}" PLANNT_CHALLENGES_PER_SECOND=5 PLANNT_CHALLENGE_BURST=20 -- --store "$store"
gateway_addr=$addr gateway_pid=$pid

csv=$work/soak.csv
status=0
"$load" soak --gateway "$gateway_addr" --mint "$mint_addr" --pid "$gateway_pid" --secs "$secs" \
    --sample-secs "$sample_secs" --csv "$csv" \
    --paid-rate "$paid_rate" --paid-connections 8 --buyers 4 --replay-rate 4 \
    --flood-connections 4 --flood-rate "$flood_rate" \
    --garbage-connections 4 --garbage-rate "$flood_rate" \
    --challenges-per-second 5 --challenge-burst 20 >"$work/report.md" || status=$?
((status == 2)) && die "plannt-load failed"
mkdir -p "$cache"
cp "$csv" "$cache/soak.csv"

if [[ -n $plot ]]; then
    venv=$cache/soak-venv
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        echo "==> python3 -m venv $venv; pip install matplotlib" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet matplotlib >&2
    fi
    MPLBACKEND=Agg "$venv/bin/python" - "$csv" "$plot" "$store" <<'EOF_PLOT'
"""Plots the soak's CSV: the gateway's RSS and its spent-set size over time."""
import csv
import sys

import matplotlib.pyplot as plt

source, target, store = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(source)))
t = [float(r["seconds"]) / 60 for r in rows]
rss = [int(r["rss_kib"]) / 1024 for r in rows]
spent = [int(r["spent_tokens"]) if r["spent_tokens"] else None for r in rows]
fig, left = plt.subplots(figsize=(7, 3.2), dpi=100)
left.plot(t, rss, color="tab:blue", label="RSS (MiB)")
left.set_xlabel("minutes")
left.set_ylabel("RSS (MiB)", color="tab:blue")
left.set_ylim(0, max(rss) * 1.25)
right = left.twinx()
right.plot(t, [s if s is not None else float("nan") for s in spent], color="tab:orange", label="spent set")
right.set_ylabel("spent-set entries", color="tab:orange")
right.set_ylim(0, max([s for s in spent if s is not None] or [1]) * 1.25)
left.set_title(f"plannt serve soak ({store} store): RSS and spent set, purged every 30 s", fontsize=10)
fig.tight_layout()
fig.savefig(target)
EOF_PLOT
    echo "==> plot: $plot" >&2
fi

cat <<EOF_REPORT

## Soak, $(date -u +%Y-%m-%dT%H:%MZ)

Machine: $(nproc) cores, $(cpu_model), Linux $(uname -r); load average at the start: $load_before, at the end: $(load_average).
Revision: $revision$(git diff --quiet HEAD -- crates bench/load Cargo.lock 2>/dev/null || echo " with local changes"); $(rustc --version).
Command: \`bench/soak.sh\` (SOAK_SECS=$secs; paid $paid_rate req/s, flood and garbage $flood_rate req/s each, replays 4 req/s; $store store; tokens valid 30 s; samples every $sample_secs s, CSV kept in $cache/soak.csv).

$(cat "$work/report.md")
EOF_REPORT
exit "$status"
