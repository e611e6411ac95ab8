#!/usr/bin/env bash
# Resident memory of a site holding 2 zones of 10,000 Services + 100,000
# endpoints (110,000 objects each), in ONE run, both ways a site can hold them
# (design.md §7):
#   watched      the site's crossdns watches both test apiservers
#                (tests/fake-apiserver, real list/watch over TLS);
#   transferred  the site's crossdns has two `primary:` sources, each fed by
#                a crossdns primary that watches one of those apiservers
#                (AXFR, then IXFR, TSIG-signed; the primaries are separate
#                processes and not counted).
# For each: steady VmRSS after sync (5 s after /readyz is 200) with the peak
# of the sync (VmHWM), then a full resync with its peak (VmHWM, reset just
# before) and the RSS after it:
#   watched      every apiserver compacted (410 -> relist of every kind);
#   transferred  both primaries restarted (a new serial and an empty journal:
#                the site's IXFR is answered with the whole zone).
# Objects as gen_cluster.py --realistic generates them (as a real apiserver
# returns them); --plain generates only the fields DNS reads.
#
#   benches/memory_xfr.sh [--services N] [--endpoints-per-service M] [--quick] [--plain]
#   env: CROSSDNS_BIN, FAKE_APISERVER_BIN (skip the build), CARGO_TARGET_DIR (default /tmp/target-bench),
#        BENCH_DIR (default /tmp/crossdns-bench/memory-xfr), BASE_PORT (15390: site admin; +1 site DNS;
#        +11, +12 the primaries' admin; +21, +22 their DNS)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
SERVICES=10000
EPS=10
REALISTIC=--realistic
while [ $# -gt 0 ]; do
    case "$1" in
        --services) SERVICES=$2; shift ;;
        --endpoints-per-service) EPS=$2; shift ;;
        --quick) SERVICES=500 ;;
        --plain) REALISTIC= ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
WORK=${BENCH_DIR:-/tmp/crossdns-bench/memory-xfr}
BASE=${BASE_PORT:-15390}
APORT=$BASE
DPORT=$((BASE + 1))
CLUSTERS=2
LABEL=big

require_tools dig python3
build_crossdns
build_fake_apiserver

PID=""
FAKES=()
PRIMARIES=()
cleanup() {
    local p
    for p in "$PID" "${PRIMARIES[@]}" "${FAKES[@]}"; do
        [ -n "$p" ] || continue
        kill "$p" 2>/dev/null || true
        timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DIR=$WORK/$LABEL
mkdir -p "$DIR"
python3 -c 'import base64; print(base64.b64encode(b"crossdns-bench-secret-0123456789").decode())' >"$DIR/sites.key"
KEYS="tsig_keys: [{name: sites, algorithm: hmac-sha256, secret_file: $DIR/sites.key}]"

# start_primary c: crossdns watching test apiserver c, serving its zone by
# transfer; sets PRIMARIES[c-1]
start_primary() {
    local c=$1 yaml=$DIR/primary-c$1.yaml
    printf 'dns:\n  listen: ["127.0.0.1:%s"]\nallow: ["127.0.0.0/8"]\nadmin:\n  listen: "127.0.0.1:%s"\n%s\n' \
        $((BASE + 20 + c)) $((BASE + 10 + c)) "$KEYS" >"$yaml"
    printf 'transfer: {allow: ["127.0.0.0/8"], key: sites}\nclusters:\n' >>"$yaml"
    printf '  - {name: c%s, zone: cluster.c%s, kubeconfig: %s}\n' "$c" "$c" "$DIR/c$c.kubeconfig" >>"$yaml"
    CROSSDNS_LOG=warn "$CROSSDNS_BIN" serve --config "$yaml" >>"$DIR/primary-c$c.log" 2>&1 &
    PRIMARIES[c - 1]=$!
}

primaries_ready() {
    local c
    for c in $(seq 1 "$CLUSTERS"); do
        wait_ready "${PRIMARIES[c - 1]}" $((BASE + 10 + c)) "$DIR/primary-c$c.log"
    done
}

site_metric() { metric_sum "http://127.0.0.1:$APORT/metrics" "$@"; }

# wait_metric_at_least name want what: polls the site's /metrics (up to 600 s)
wait_metric_at_least() {
    for _ in $(seq 1 2400); do
        [ "$(site_metric "$1")" -ge "$2" ] && return 0
        sleep 0.25
    done
    echo "$3 never completed ($1 < $2)" >&2
    return 1
}

# measure how: the site's crossdns holding both zones `watched` or
# `transferred` -> R_RSS R_HWM R_PEAK R_AFTER (kB), R_SYNC R_RESYNC (s), R_NOTE
measure() {
    local how=$1 yaml=$DIR/site-$1.yaml log=$DIR/site-$1.log c t0 t1 before
    printf 'dns:\n  listen: ["127.0.0.1:%s"]\nallow: ["127.0.0.0/8"]\nadmin:\n  listen: "127.0.0.1:%s"\n%s\nclusters:\n' \
        "$DPORT" "$APORT" "$KEYS" >"$yaml"
    for c in $(seq 1 "$CLUSTERS"); do
        if [ "$how" = watched ]; then
            printf '  - {name: c%s, zone: cluster.c%s, kubeconfig: %s}\n' "$c" "$c" "$DIR/c$c.kubeconfig" >>"$yaml"
        else
            printf '  - {name: c%s, zone: cluster.c%s, primary: {servers: ["127.0.0.1:%s"], key: sites}}\n' \
                "$c" "$c" $((BASE + 20 + c)) >>"$yaml"
        fi
    done
    t0=$(date +%s.%N)
    CROSSDNS_LOG=warn "$CROSSDNS_BIN" serve --config "$yaml" >"$log" 2>&1 &
    PID=$!
    wait_ready "$PID" "$APORT" "$log"
    t1=$(date +%s.%N)
    sleep 5
    all_answer "$how"
    R_RSS=$(status_kb "$PID" VmRSS)
    R_HWM=$(status_kb "$PID" VmHWM)
    R_SYNC=$(python3 -c "print($t1 - $t0)")
    echo "$how: VmRSS $R_RSS kB  VmHWM $R_HWM kB  ready after $R_SYNC s" >&2

    echo 5 >"/proc/$PID/clear_refs" # VmHWM := VmRSS, so the next peak is the resync's
    t0=$(date +%s.%N)
    if [ "$how" = watched ]; then
        before=$(site_metric crossdns_cluster_lists_total)
        compact_all "$LABEL"
        wait_metric_at_least crossdns_cluster_lists_total $((before + 4 * CLUSTERS)) "$how: the relists"
        R_NOTE="every kind of both clusters relisted after a compaction"
    else
        before=$(site_metric crossdns_primary_transfers_total)
        local full_before
        full_before=$(($(site_metric crossdns_primary_transfers_total 'type="ixfr_full"') \
            + $(site_metric crossdns_primary_transfers_total 'type="axfr"')))
        for c in $(seq 1 "$CLUSTERS"); do
            kill "${PRIMARIES[c - 1]}"
            timeout 10 tail --pid="${PRIMARIES[c - 1]}" -f /dev/null || true
            start_primary "$c"
        done
        primaries_ready
        wait_metric_at_least crossdns_primary_transfers_total $((before + CLUSTERS)) "$how: the transfers"
        local full
        full=$(($(site_metric crossdns_primary_transfers_total 'type="ixfr_full"') \
            + $(site_metric crossdns_primary_transfers_total 'type="axfr"') - full_before))
        R_NOTE="both primaries restarted: $full whole-zone transfers applied (IXFR answered whole or AXFR)"
    fi
    t1=$(date +%s.%N)
    sleep 5
    all_answer "$how after the resync"
    R_PEAK=$(status_kb "$PID" VmHWM)
    R_AFTER=$(status_kb "$PID" VmRSS)
    R_RESYNC=$(python3 -c "print($t1 - $t0)")
    echo "$how: resync peak VmHWM $R_PEAK kB, after VmRSS $R_AFTER kB, in $R_RESYNC s ($R_NOTE)" >&2
    kill "$PID"
    timeout 10 tail --pid="$PID" -f /dev/null || true
    PID=""
}

generate "$LABEL" "$SERVICES" "$EPS"
start_fakes "$LABEL"
rm -f "$DIR"/primary-c*.log
for c in $(seq 1 "$CLUSTERS"); do start_primary "$c"; done
primaries_ready
P_RSS=$(for p in "${PRIMARIES[@]}"; do status_kb "$p" VmRSS; done | paste -sd' ')

measure watched
W=("$R_RSS" "$R_HWM" "$R_PEAK" "$R_AFTER" "$R_SYNC" "$R_RESYNC")
W_NOTE=$R_NOTE
measure transferred
T=("$R_RSS" "$R_HWM" "$R_PEAK" "$R_AFTER" "$R_SYNC" "$R_RESYNC")
T_NOTE=$R_NOTE

python3 - "$CLUSTERS" "$SERVICES" "$EPS" "$P_RSS" "$W_NOTE" "$T_NOTE" "${W[@]}" "${T[@]}" <<'PY'
import sys
c, n, m = (int(x) for x in sys.argv[1:4])
prim = [int(x) for x in sys.argv[4].split()]
notes = sys.argv[5:7]
w = [float(x) for x in sys.argv[7:13]]
t = [float(x) for x in sys.argv[13:19]]
MiB = 1024
print(f"site holding {c} zones x ({n} services + {n * m} endpoints) = {c * (n + n * m)} objects "
      f"(one EndpointSlice of {m} endpoints per Service)")
print(f"the primaries (each watching one apiserver, serving transfers), after their first sync: "
      + ", ".join(f"{p / MiB:.1f} MiB" for p in prim))
for name, v, note in (("watched", w, notes[0]), ("transferred", t, notes[1])):
    print(f"{name:>11}: steady VmRSS {v[0] / MiB:.1f} MiB, sync peak VmHWM {v[1] / MiB:.1f} MiB, ready after {v[4]:.1f} s")
    print(f"{'':>11}  resync ({note}): peak VmHWM {v[2] / MiB:.1f} MiB, after VmRSS {v[3] / MiB:.1f} MiB, in {v[5]:.1f} s")
print(f"transferred / watched: steady VmRSS {t[0] / w[0]:.2f}x, sync peak {t[1] / w[1]:.2f}x, "
      f"resync peak {t[2] / w[2]:.2f}x, after resync {t[3] / w[3]:.2f}x")
PY
