#!/usr/bin/env bash
# Resident memory of crossdns holding 3 clusters x (10,000 Services + 100,000
# endpoints), in ONE run from both sources users have:
#   manifests  the same objects from folders;
#   apiserver  three test apiservers (tests/fake-apiserver, real list/watch
#              over TLS), the path users run: steady RSS, then every
#              apiserver compacted (410 -> relist of every kind) with the peak
#              RSS during the relists (VmHWM, reset just before) and the RSS
#              after them;
# against a baseline of 3 tiny clusters, compared with CoreDNS's published
# sizing for its kubernetes plugin:
#   MB = (pods + services) / 1000 + 54        (per CoreDNS instance = per cluster)
# so 3 clusters x (100,000 endpoints/pods + 10,000 services) -> 3 x (110 + 54) = 492 MB.
# Objects are generated as a real apiserver returns them (gen_cluster.py
# --realistic: uid, labels, managedFields, kubectl's last-applied annotation,
# status, endpoint nodeName/zone), one EndpointSlice of M endpoints per
# Service; --plain generates only the fields DNS reads.
#
#   benches/memory.sh [--services N] [--endpoints-per-service M] [--quick] [--source manifests|apiserver|both]
#   env: CROSSDNS_BIN, FAKE_APISERVER_BIN (skip the build), CARGO_TARGET_DIR (default /tmp/target-bench),
#        BENCH_DIR (default /tmp/crossdns-bench/memory), ADMIN_PORT (15380), DNS_PORT (15381)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
SERVICES=10000
EPS=10
SOURCE=both
REALISTIC=--realistic
while [ $# -gt 0 ]; do
    case "$1" in
        --services) SERVICES=$2; shift ;;
        --endpoints-per-service) EPS=$2; shift ;;
        --quick) SERVICES=500 ;;
        --source) SOURCE=$2; shift ;;
        --plain) REALISTIC= ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
WORK=${BENCH_DIR:-/tmp/crossdns-bench/memory}
APORT=${ADMIN_PORT:-15380}
DPORT=${DNS_PORT:-15381}
CLUSTERS=3

require_tools dig python3
build_crossdns
[ "$SOURCE" = manifests ] || build_fake_apiserver

PID=""
FAKES=()
cleanup() {
    local p
    for p in "$PID" "${FAKES[@]}"; do
        [ -n "$p" ] || continue
        kill "$p" 2>/dev/null || true
        timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# measure label source services eps -> sets R_RSS R_HWM (kB) and R_SYNC (s); for the
# apiserver source also R_PEAK R_AFTER (kB) and R_RELIST (s) around a compaction of all.
measure() {
    local label=$1 source=$2 n=$3 m=$4 dir=$WORK/$1 c yaml i t0 t1 lists
    mkdir -p "$dir"
    generate "$label" "$n" "$m"
    yaml=$dir/crossdns-$source.yaml
    printf 'dns:\n  listen: ["127.0.0.1:%s"]\nallow: ["127.0.0.0/8"]\nadmin:\n  listen: "127.0.0.1:%s"\nclusters:\n' \
        "$DPORT" "$APORT" >"$yaml"
    if [ "$source" = apiserver ]; then start_fakes "$label"; fi
    for c in $(seq 1 "$CLUSTERS"); do
        if [ "$source" = apiserver ]; then
            printf '  - name: c%s\n    zone: cluster.c%s\n    kubeconfig: %s\n' "$c" "$c" "$dir/c$c.kubeconfig" >>"$yaml"
        else
            printf '  - name: c%s\n    zone: cluster.c%s\n    manifests: %s\n' "$c" "$c" "$dir/c$c/manifests" >>"$yaml"
        fi
    done
    t0=$(date +%s.%N)
    CROSSDNS_LOG=warn "$CROSSDNS_BIN" serve --config "$yaml" >"$dir/crossdns-$source.log" 2>&1 &
    PID=$!
    wait_ready "$PID" "$APORT" "$dir/crossdns-$source.log"
    t1=$(date +%s.%N)
    sleep 5
    all_answer "$label/$source" || return 1
    R_RSS=$(status_kb "$PID" VmRSS)
    R_HWM=$(status_kb "$PID" VmHWM)
    R_SYNC=$(python3 -c "print($t1 - $t0)")
    echo "$label/$source: VmRSS $R_RSS kB  VmHWM $R_HWM kB  ready after $R_SYNC s" >&2
    if [ "$source" = apiserver ]; then
        lists=$(metric_sum "http://127.0.0.1:$APORT/metrics" crossdns_cluster_lists_total)
        echo 5 >"/proc/$PID/clear_refs" # VmHWM := VmRSS, so the next peak is the relist's
        t0=$(date +%s.%N)
        compact_all "$label"
        if [ "$lists" -gt 0 ]; then
            for i in $(seq 1 1200); do # every kind of every cluster listed again
                [ "$(metric_sum "http://127.0.0.1:$APORT/metrics" crossdns_cluster_lists_total)" -ge $((lists + 4 * CLUSTERS)) ] && break
                sleep 0.25
            done
            [ "$(metric_sum "http://127.0.0.1:$APORT/metrics" crossdns_cluster_lists_total)" -ge $((lists + 4 * CLUSTERS)) ] \
                || { echo "$label/$source: relists never completed" >&2; return 1; }
        else
            # A crossdns without crossdns_cluster_lists_total (before issue 8):
            # give its relists a fixed while.
            sleep "${RELIST_WAIT:-60}"
        fi
        t1=$(date +%s.%N)
        sleep 5
        all_answer "$label/$source after the relist" || return 1
        R_PEAK=$(status_kb "$PID" VmHWM)
        R_AFTER=$(status_kb "$PID" VmRSS)
        R_RELIST=$(python3 -c "print($t1 - $t0)")
        echo "$label/$source: relist peak VmHWM $R_PEAK kB, after VmRSS $R_AFTER kB, relisted in $R_RELIST s" >&2
    fi
    kill "$PID"
    timeout 10 tail --pid="$PID" -f /dev/null || true
    PID=""
    stop_fakes
}

measure tiny manifests 10 1
BASE_RSS=$R_RSS BASE_HWM=$R_HWM
M_RSS=0 M_HWM=0 M_SYNC=0 A_RSS=0 A_HWM=0 A_SYNC=0 A_PEAK=0 A_AFTER=0 A_RELIST=0
if [ "$SOURCE" != apiserver ]; then
    measure big manifests "$SERVICES" "$EPS"
    M_RSS=$R_RSS M_HWM=$R_HWM M_SYNC=$R_SYNC
fi
if [ "$SOURCE" != manifests ]; then
    measure big apiserver "$SERVICES" "$EPS"
    A_RSS=$R_RSS A_HWM=$R_HWM A_SYNC=$R_SYNC A_PEAK=$R_PEAK A_AFTER=$R_AFTER A_RELIST=$R_RELIST
fi

python3 - "$CLUSTERS" "$SERVICES" "$EPS" "$BASE_RSS" "$BASE_HWM" \
    "$M_RSS" "$M_HWM" "$M_SYNC" "$A_RSS" "$A_HWM" "$A_SYNC" "$A_PEAK" "$A_AFTER" "$A_RELIST" <<'PY'
import sys
c, n, m, brss, bhwm, mrss, mhwm = (int(x) for x in sys.argv[1:8])
msync = float(sys.argv[8])
arss, ahwm = int(sys.argv[9]), int(sys.argv[10])
async_ = float(sys.argv[11])
apeak, aafter = int(sys.argv[12]), int(sys.argv[13])
arelist = float(sys.argv[14])
eps = n * m
objects = c * (n + eps)          # services + endpoints (pods), as CoreDNS counts
api_objects = c * 2 * n          # Service + EndpointSlice objects
MiB = 1024
coredns_mb = c * ((n + eps) / 1000 + 54)
pct = lambda kb: kb * 1024 / (coredns_mb * 1e6) * 100
print(f"clusters {c} x ({n} services + {eps} endpoints) = {objects} objects ({api_objects} API objects, "
      f"one EndpointSlice of {m} endpoints per Service)")
print(f"CoreDNS sizing: {c} x ({n + eps}/1000 + 54) MB = {coredns_mb:.0f} MB (goal: steady <= 25% = {coredns_mb * 0.25:.0f} MB)")
print(f"baseline (3 tiny clusters):  VmRSS {brss / MiB:.1f} MiB  VmHWM {bhwm / MiB:.1f} MiB")
if mrss:
    extra = (mrss - brss) * 1024
    print(f"manifests: steady VmRSS {mrss / MiB:.1f} MiB ({pct(mrss):.1f}% of CoreDNS)  VmHWM {mhwm / MiB:.1f} MiB  "
          f"synced in {msync:.1f} s; {extra / objects:.0f} bytes per service+endpoint above baseline")
if arss:
    extra = (arss - brss) * 1024
    print(f"apiserver: steady VmRSS {arss / MiB:.1f} MiB ({pct(arss):.1f}% of CoreDNS)  VmHWM {ahwm / MiB:.1f} MiB  "
          f"synced in {async_:.1f} s; {extra / objects:.0f} bytes per service+endpoint above baseline")
    print(f"apiserver: relist of every kind after a compaction of all {c}: peak VmHWM {apeak / MiB:.1f} MiB = "
          f"{apeak / arss:.2f}x steady (goal <= 1.3x); after: VmRSS {aafter / MiB:.1f} MiB = "
          f"{(aafter / arss - 1) * 100:+.1f}% of steady (goal within 10%); relisted in {arelist:.1f} s")
if mrss and arss:
    print(f"apiserver / manifests steady VmRSS: {arss / mrss:.2f}x")
PY
