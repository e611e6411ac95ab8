#!/usr/bin/env bash
# Forwarding (stub zone) cost and upstream-failure timing.
#
# Part 1, throughput and latency: knotd serves zone fwd.bench (400,000 A
# records) on core 0; crossdns forwards fwd.bench to it, also on core 0;
# dnsperf runs on core 1. Cases, each a 10 s run, in the same session:
#   (a) knotd directly
#   (b) through crossdns, 1,000 names, 100% cache hits after a warm-up pass
#   (c) through crossdns, all-distinct names (300,000, each sent at most once:
#       dnsperf -n 1), so every query is a cache miss that goes to knotd
# qps comes from a plain run; p99 latency from a separate 5 s run with
# `dnsperf -v` (one line per response with its latency: the installed
# dnsperf 2.10 has no latency histogram option, and -v costs dnsperf some CPU,
# so those runs' qps are lower). Ratios are against (a), same session.
# crossdns's own /metrics (cache hits/misses) confirm the hit/miss mix.
#
# Part 2, upstream health: crossdns forwards hc.bench to two knotd upstreams
# (policy sequential, max_fails 2) under a steady 2,000 qps of distinct names.
# The first knotd is SIGKILLed; /metrics is polled every 50 ms for
# crossdns_forward_upstream_up of that upstream -> 0 (and its requests
# counter -> flat); then it is restarted and the poll waits for up -> 1.
#
#   benches/forward.sh            # full run (about 2 minutes after the build)
#   benches/forward.sh --quick    # 3 s runs
#   env: CROSSDNS_BIN (skip the build), CARGO_TARGET_DIR (default /tmp/target-bench),
#        BENCH_DIR (default /tmp/crossdns-bench/forward), DNSPERF_CLIENTS (8),
#        DNSPERF_OUTSTANDING (100), SERVER_CPU (0), CLIENT_CPU (1), BASE_PORT (16353)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
DURATION=10
LAT_DURATION=5
case "${1:-}" in
    --quick) DURATION=3; LAT_DURATION=2 ;;
    "") ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
esac

WORK=${BENCH_DIR:-/tmp/crossdns-bench/forward}
CLIENTS=${DNSPERF_CLIENTS:-8}
OUTSTANDING=${DNSPERF_OUTSTANDING:-100}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
BASE=${BASE_PORT:-16353}
KPORT=$BASE                # knotd, fwd.bench
CPORT=$((BASE + 1))        # crossdns forwarding fwd.bench
CADMIN=$((BASE + 2))
H1PORT=$((BASE + 3))       # knotd #1, hc.bench
H2PORT=$((BASE + 4))       # knotd #2, hc.bench
HPORT=$((BASE + 5))        # crossdns forwarding hc.bench
HADMIN=$((BASE + 6))
KNOTD=${KNOTD:-$(command -v knotd || echo /usr/sbin/knotd)}
NAMES=400000
HC_NAMES=50000

require_tools dnsperf dig taskset python3 curl "$KNOTD"

build_crossdns

# ---- processes: every one we start is killed on exit
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin_all() { # every thread of $1 onto $SCPU (knotd moves its threads after start)
    local t
    for t in /proc/"$1"/task/*; do
        taskset -pc "$SCPU" "${t##*/}" >/dev/null 2>&1 || true
    done
}

wait_answer() { # port name ip label pid: until dig gets ip for name (60 s)
    local i
    for i in $(seq 1 600); do
        kill -0 "$5" 2>/dev/null || { echo "$4 exited during startup" >&2; return 1; }
        if dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 "$2" A 2>/dev/null | grep -qxF "$3"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$4 did not answer $2 within 60 s" >&2
    return 1
}

now_ms() { date +%s%3N; }

metric() { # admin_port name label_substring -> value (sum), empty if absent
    curl -s --max-time 1 "http://127.0.0.1:$1/metrics" \
        | awk -v n="$2" -v l="$3" '$1 ~ "^"n"[{ ]" || $1 == n { if (index($1, l)) { s += $NF; f = 1 } } END { if (f) print s }'
}

# ---- data
mkdir -p "$WORK"
python3 - "$WORK" "$NAMES" "$HC_NAMES" <<'PY'
import os, sys
work, n, hc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def ip(i):
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
def zone(origin, count, path):
    with open(path, "w") as f:
        f.write(f"$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns hostmaster 1 3600 600 86400 3600\n@ NS ns\nns A 127.0.0.1\n")
        for i in range(count):
            f.write(f"n{i} A {ip(i)}\n")
zone("fwd.bench", n, os.path.join(work, "fwd.bench.zone"))
zone("hc.bench", hc, os.path.join(work, "hc.bench.zone"))
def queries(path, names, origin="fwd.bench"):
    with open(path, "w") as f:
        for i in names:
            f.write(f"n{i}.{origin} A\n")
queries(os.path.join(work, "hits.txt"), range(300000, 301000))                  # 1,000 names
queries(os.path.join(work, "miss.txt"), range(0, 300000))                       # 300,000 distinct
queries(os.path.join(work, "miss-lat.txt"), range(301000, 400000))              # 99,000 distinct
queries(os.path.join(work, "hc.txt"), range(0, hc), "hc.bench")
PY

knot_conf() { # dir port zone...
    local dir=$1 port=$2; shift 2
    mkdir -p "$dir"
    rm -rf "${dir:?}"/*.mdb "$dir"/journal "$dir"/timers "$dir"/keys 2>/dev/null || true
    {
        printf 'server:\n    rundir: "%s"\n    listen: 127.0.0.1@%s\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n' "$dir" "$port"
        printf 'log:\n  - target: stderr\n    any: warning\n'
        printf 'database:\n    storage: "%s"\n' "$dir"
        printf 'template:\n  - id: default\n    storage: "%s"\n    zonefile-sync: -1\n    journal-content: none\n' "$dir"
        printf 'zone:\n'
        for z in "$@"; do
            printf '  - domain: %s\n    file: "%s/%s.zone"\n' "$z" "$WORK" "$z"
        done
    } >"$dir/knot.conf"
}

start_knot() { # dir -> pid in KNOT_PID
    taskset -c "$SCPU" "$KNOTD" -c "$1/knot.conf" >>"$1/knotd.log" 2>&1 &
    KNOT_PID=$!
    PIDS+=("$KNOT_PID")
}

crossdns_conf() { # path port admin zone upstreams-yaml-list
    mkdir -p "$WORK/empty"
    cat >"$1" <<EOF
dns:
  listen: ["127.0.0.1:$2"]
allow: ["127.0.0.0/8"]
admin:
  listen: "127.0.0.1:$3"
clusters:
  - {name: local, zone: cluster.local, manifests: "$WORK/empty"}
forward:
  - zone: $4
    upstreams: [$5]
    policy: sequential
    max_fails: 2
    stale_for: "0"
EOF
}

# ---- part 1: throughput and latency
knot_conf "$WORK/knot" "$KPORT" fwd.bench
start_knot "$WORK/knot"
KPID=$KNOT_PID
crossdns_conf "$WORK/crossdns.yaml" "$CPORT" "$CADMIN" fwd.bench "\"127.0.0.1:$KPORT\""
CROSSDNS_LOG=warn taskset -c "$SCPU" "$CROSSDNS_BIN" serve --config "$WORK/crossdns.yaml" \
    >"$WORK/crossdns.log" 2>&1 &
CPID=$!
PIDS+=("$CPID")
wait_answer "$KPORT" n1.fwd.bench 10.0.0.1 knotd "$KPID" || { tail "$WORK/knot/knotd.log" >&2; exit 1; }
wait_answer "$CPORT" n1.fwd.bench 10.0.0.1 crossdns "$CPID" || { tail "$WORK/crossdns.log" >&2; exit 1; }
pin_all "$KPID"
pin_all "$CPID"

RESULTS=$WORK/results.tsv
: >"$RESULTS"
perf() { # label port file extra-args... -> appends "label qps completed lost p99_ms avg_ms" to RESULTS
    local label=$1 port=$2 file=$3; shift 3
    local out
    pin_all "$KPID"; pin_all "$CPID"
    out=$(timeout 120 taskset -c "$CCPU" dnsperf -s 127.0.0.1 -p "$port" -d "$file" \
        -c "$CLIENTS" -q "$OUTSTANDING" -T 1 "$@" 2>&1) \
        || { echo "dnsperf failed ($label):" >&2; echo "$out" | tail -20 >&2; return 1; }
    printf '%s\n' "$out" >"$WORK/dnsperf-$label.txt"
    python3 - "$label" "$WORK/dnsperf-$label.txt" "$RESULTS" <<'PY'
import re, sys
label, path, results = sys.argv[1:]
text = open(path).read()
def num(pat):
    m = re.search(pat, text)
    if not m:
        sys.exit(f"cannot parse dnsperf output ({pat}):\n{text[-2000:]}")
    return m.group(1)
qps = float(num(r"Queries per second:\s+([\d.]+)"))
done = int(num(r"Queries completed:\s+(\d+)"))
lost = int(num(r"Queries lost:\s+(\d+)"))
avg = float(num(r"Average Latency \(s\):\s+([\d.]+)")) * 1000
# -v lines: "> NOERROR n1.fwd.bench A 0.000123"
lat = sorted(float(l.split()[-1]) for l in text.splitlines()
             if l.startswith("> ") and re.match(r"^[\d.]+$", l.split()[-1]))
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
codes = num(r"Response codes:\s+(.*)") if "Response codes" in text else "?"
with open(results, "a") as f:
    f.write(f"{label}\t{qps}\t{done}\t{lost}\t{p50}\t{p99}\t{avg}\n")
print(f"{label:16} {qps:9.0f} qps  completed {done:8d}  lost {lost:5d}  avg {avg:6.3f} ms"
      + (f"  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms" if lat else "") + f"  [{codes}]")
PY
}

cache_counts() { # -> "hits misses"
    echo "$(metric "$CADMIN" crossdns_forward_cache_hits_total fwd.bench) $(metric "$CADMIN" crossdns_forward_cache_misses_total fwd.bench)"
}

echo "== part 1: ${DURATION}s runs (latency runs ${LAT_DURATION}s with -v), -c $CLIENTS -q $OUTSTANDING; knotd+crossdns on cpu $SCPU, dnsperf on cpu $CCPU"
# warm-up: every hit name once, through crossdns
timeout 60 taskset -c "$CCPU" dnsperf -s 127.0.0.1 -p "$CPORT" -d "$WORK/hits.txt" -n 1 -c 4 -q 50 >/dev/null 2>&1
# The hit runs come first: the miss runs fill the 10,000-entry cache and evict the hit names.
perf a-knotd "$KPORT" "$WORK/hits.txt" -l "$DURATION"
perf a-knotd-lat "$KPORT" "$WORK/hits.txt" -l "$LAT_DURATION" -v
read -r h0 m0 < <(cache_counts)
perf b-crossdns-hit "$CPORT" "$WORK/hits.txt" -l "$DURATION"
perf b-crossdns-hit-lat "$CPORT" "$WORK/hits.txt" -l "$LAT_DURATION" -v
read -r h1 m1 < <(cache_counts)
perf c-crossdns-miss "$CPORT" "$WORK/miss.txt" -l "$DURATION" -n 1
perf c-crossdns-miss-lat "$CPORT" "$WORK/miss-lat.txt" -l "$LAT_DURATION" -n 1 -v
read -r h2 m2 < <(cache_counts)
echo "crossdns cache during (b): hits $((h1 - h0)) misses $((m1 - m0));  during (c): hits $((h2 - h1)) misses $((m2 - m1))"

python3 - "$RESULTS" <<'PY'
import sys
rows = {l.split("\t")[0]: [float(x) for x in l.split("\t")[1:]] for l in open(sys.argv[1]) if l.strip()}
k = rows["a-knotd"][0]
kl = rows["a-knotd-lat"][4]
print("\nsummary (qps from the plain runs, p99 from the -v runs):")
for case, lat in (("a-knotd", "a-knotd-lat"), ("b-crossdns-hit", "b-crossdns-hit-lat"), ("c-crossdns-miss", "c-crossdns-miss-lat")):
    q = rows[case][0]
    p = rows[lat][4]
    print(f"  {case:16} {q:9.0f} qps ({q / k:5.2f}x knotd)   p99 {p:6.3f} ms ({p / kl:5.2f}x knotd)   p50 {rows[lat][3]:6.3f} ms")
PY
kill -9 "$CPID" "$KPID" 2>/dev/null || true

# ---- part 2: upstream down / up timing
echo
echo "== part 2: two upstreams (sequential, max_fails 2), 2,000 qps of distinct names; kill the first, then restart it"
knot_conf "$WORK/hc1" "$H1PORT" hc.bench
knot_conf "$WORK/hc2" "$H2PORT" hc.bench
start_knot "$WORK/hc1"; H1PID=$KNOT_PID
start_knot "$WORK/hc2"; H2PID=$KNOT_PID
crossdns_conf "$WORK/crossdns-hc.yaml" "$HPORT" "$HADMIN" hc.bench "\"127.0.0.1:$H1PORT\", \"127.0.0.1:$H2PORT\""
CROSSDNS_LOG=warn taskset -c "$SCPU" "$CROSSDNS_BIN" serve --config "$WORK/crossdns-hc.yaml" \
    >"$WORK/crossdns-hc.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
wait_answer "$H1PORT" n1.hc.bench 10.0.0.1 knotd-1 "$H1PID"
wait_answer "$H2PORT" n1.hc.bench 10.0.0.1 knotd-2 "$H2PID"
wait_answer "$HPORT" n1.hc.bench 10.0.0.1 crossdns "$HPID"
U1="127.0.0.1:$H1PORT"
timeout 60 taskset -c "$CCPU" dnsperf -s 127.0.0.1 -p "$HPORT" -d "$WORK/hc.txt" -n 1 -l 25 -Q 2000 \
    -c 4 -q 50 >"$WORK/dnsperf-hc.txt" 2>&1 &
DPID=$!
PIDS+=("$DPID")
sleep 2
[ "$(metric "$HADMIN" crossdns_forward_upstream_up "$U1")" = "1" ] || { echo "upstream 1 not up before the kill" >&2; exit 1; }
REQ_BEFORE=$(metric "$HADMIN" crossdns_forward_upstream_requests_total "$U1")
T_KILL=$(now_ms)
kill -9 "$H1PID"
T_DOWN=""; T_FLAT=""; LAST_REQ=""
for _ in $(seq 1 200); do  # 10 s
    sleep 0.05
    t=$(now_ms)
    up=$(metric "$HADMIN" crossdns_forward_upstream_up "$U1")
    req=$(metric "$HADMIN" crossdns_forward_upstream_requests_total "$U1")
    [ "$req" != "$LAST_REQ" ] && { LAST_REQ=$req; T_FLAT=$t; }
    if [ -z "$T_DOWN" ] && [ "$up" = "0" ]; then T_DOWN=$t; fi
    if [ -n "$T_DOWN" ] && [ $((t - T_DOWN)) -gt 1000 ]; then break; fi
done
[ -n "$T_DOWN" ] || { echo "upstream 1 never marked down" >&2; exit 1; }
FAILS=$(metric "$HADMIN" crossdns_forward_upstream_failures_total "$U1")
sleep 1
start_knot "$WORK/hc1"; H1PID=$KNOT_PID
T_START=$(now_ms)
T_ANSWERS=""; T_UP=""
for _ in $(seq 1 400); do  # 20 s
    t=$(now_ms)
    if [ -z "$T_ANSWERS" ] && dig +short +time=1 +tries=1 -p "$H1PORT" @127.0.0.1 n1.hc.bench A 2>/dev/null | grep -qxF 10.0.0.1; then
        T_ANSWERS=$(now_ms)
    fi
    if [ "$(metric "$HADMIN" crossdns_forward_upstream_up "$U1")" = "1" ]; then T_UP=$(now_ms); break; fi
    sleep 0.05
done
wait "$DPID" || true
SERVFAIL=$(grep -oE 'SERVFAIL [0-9]+' "$WORK/dnsperf-hc.txt" | awk '{print $2}' || true)
echo "kill -> up=0 on /metrics:             $((T_DOWN - T_KILL)) ms   (failures counted: $FAILS; requests to it: $REQ_BEFORE before the kill, $LAST_REQ final)"
echo "kill -> last new request to it:       $((T_FLAT - T_KILL)) ms   (50 ms polls)"
if [ -n "$T_UP" ]; then
    echo "restart -> knotd answers (dig):        $(( ${T_ANSWERS:-$T_UP} - T_START )) ms"
    echo "restart -> up=1 on /metrics:          $((T_UP - T_START)) ms   (knotd answering -> up=1: $((T_UP - ${T_ANSWERS:-$T_UP})) ms; probes every 250 ms)"
else
    echo "upstream 1 NOT marked up within 20 s of the restart" >&2
fi
echo "client-visible SERVFAILs during the failover: ${SERVFAIL:-0}"
grep -E 'Queries (sent|completed|lost)|Response codes' "$WORK/dnsperf-hc.txt" | sed 's/^/  dnsperf: /'
