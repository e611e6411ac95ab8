#!/usr/bin/env bash
# Resident memory of crossdns holding 3 clusters x (10,000 Services + 100,000
# endpoints) from manifests folders, against a baseline of 3 tiny clusters,
# compared with CoreDNS's published sizing for its kubernetes plugin:
#   MB = (pods + services) / 1000 + 54        (per CoreDNS instance = per cluster)
# so 3 clusters x (100,000 endpoints/pods + 10,000 services) -> 3 x (110 + 54) = 492 MB.
#
#   benches/memory.sh [--services N] [--endpoints-per-service M] [--quick]
#   env: CROSSDNS_BIN (skip the build), CARGO_TARGET_DIR (default /tmp/target-bench),
#        BENCH_DIR (default /tmp/crossdns-bench/memory), ADMIN_PORT (15380), DNS_PORT (15381)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
SERVICES=10000
EPS=10
while [ $# -gt 0 ]; do
    case "$1" in
        --services) SERVICES=$2; shift ;;
        --endpoints-per-service) EPS=$2; shift ;;
        --quick) SERVICES=500 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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

PID=""
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        timeout 10 tail --pid="$PID" -f /dev/null 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_code() { # url -> status code (000 when nothing answers)
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }

# measure label services eps -> sets R_RSS R_HWM (kB) and R_SYNC (s)
measure() {
    local label=$1 n=$2 m=$3 dir=$WORK/$1 c yaml i code t0 t1
    mkdir -p "$dir"
    yaml=$dir/crossdns.yaml
    printf 'dns:\n  listen: ["127.0.0.1:%s"]\nallow: ["127.0.0.0/8"]\nadmin:\n  listen: "127.0.0.1:%s"\nclusters:\n' \
        "$DPORT" "$APORT" >"$yaml"
    for c in $(seq 1 "$CLUSTERS"); do
        python3 "$HERE/gen_cluster.py" --services "$n" --endpoints-per-service "$m" \
            --out "$dir/c$c" --zone "cluster.c$c" --cluster-name "c$c" 2>/dev/null
        printf '  - name: c%s\n    zone: cluster.c%s\n    manifests: %s\n' "$c" "$c" "$dir/c$c/manifests" >>"$yaml"
    done
    t0=$(date +%s.%N)
    CROSSDNS_LOG=warn "$CROSSDNS_BIN" serve --config "$yaml" >"$dir/crossdns.log" 2>&1 &
    PID=$!
    code=000
    for i in $(seq 1 600); do # up to ~300 s
        kill -0 "$PID" 2>/dev/null || { echo "crossdns exited:" >&2; tail -20 "$dir/crossdns.log" >&2; return 1; }
        code=$(http_code "http://127.0.0.1:$APORT/readyz")
        [ "$code" = 200 ] && break
        sleep 0.5
    done
    [ "$code" = 200 ] || { echo "$label: /readyz not 200 after 300 s" >&2; return 1; }
    t1=$(date +%s.%N)
    sleep 2
    for c in $(seq 1 "$CLUSTERS"); do # every zone answers
        dig +short +time=2 +tries=1 -p "$DPORT" @127.0.0.1 "svc-1.ns-1.svc.cluster.c$c" A | grep -qx 10.96.0.1 \
            || { echo "$label: cluster c$c does not answer" >&2; return 1; }
    done
    R_RSS=$(status_kb "$PID" VmRSS)
    R_HWM=$(status_kb "$PID" VmHWM)
    R_SYNC=$(python3 -c "print($t1 - $t0)")
    echo "$label: VmRSS $R_RSS kB  VmHWM $R_HWM kB  ready after $R_SYNC s" >&2
    kill "$PID"
    timeout 10 tail --pid="$PID" -f /dev/null || true
    PID=""
}

measure tiny 10 1
BASE_RSS=$R_RSS BASE_HWM=$R_HWM
measure big "$SERVICES" "$EPS"
RSS=$R_RSS HWM=$R_HWM SYNC_T=$R_SYNC

python3 - "$CLUSTERS" "$SERVICES" "$EPS" "$BASE_RSS" "$BASE_HWM" "$RSS" "$HWM" "$SYNC_T" <<'PY'
import sys
c, n, m, brss, bhwm, rss, hwm = (int(x) for x in sys.argv[1:8])
sync = float(sys.argv[8])
eps = n * m
objects = c * (n + eps)          # services + endpoints (pods), as CoreDNS counts
api_objects = c * 2 * n          # Service + EndpointSlice objects
MB = 1024 * 1024
coredns_mb = c * ((n + eps) / 1000 + 54)
extra = (rss - brss) * 1024
print(f"clusters {c} x ({n} services + {eps} endpoints) = {objects} objects ({api_objects} API objects); synced in {sync:.1f} s")
print(f"baseline (3 tiny clusters): VmRSS {brss / 1024:.1f} MiB  VmHWM {bhwm / 1024:.1f} MiB")
print(f"loaded:                     VmRSS {rss / 1024:.1f} MiB  VmHWM {hwm / 1024:.1f} MiB")
print(f"RSS minus baseline: {extra / MB:.1f} MiB = {extra / objects:.0f} bytes per service+endpoint "
      f"({extra / api_objects:.0f} bytes per API object)")
print(f"CoreDNS sizing: {c} x ({n + eps}/1000 + 54) MB = {coredns_mb:.0f} MB")
print(f"ratio VmRSS/CoreDNS: {rss * 1024 / (coredns_mb * 1e6) * 100:.1f}%   "
      f"VmHWM/CoreDNS: {hwm * 1024 / (coredns_mb * 1e6) * 100:.1f}%   (goal <= 25%)")
PY
