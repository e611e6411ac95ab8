#!/usr/bin/env bash
# Queries per second and server CPU time per answered query: crossdns against
# knotd (reference authoritative server) on the same generated zone, both
# pinned to core 0, dnsperf on core 1, runs interleaved
# (crossdns, knotd, crossdns, knotd, ...).
#
#   benches/dnsperf.sh            # 10,000 services (23,000 names), 3 rounds x 10 s
#   benches/dnsperf.sh --quick    # 200 services, 1 round x 3 s (sanity check)
#   options: --rounds N --duration S --services N --endpoints-per-service M
#   env: CROSSDNS_BIN (skip the build), CARGO_TARGET_DIR (default /tmp/target-bench),
#        BENCH_DIR (default /tmp/crossdns-bench/dnsperf), CROSSDNS_PORT (15353),
#        KNOT_PORT (15354), DNSPERF_CLIENTS (8), DNSPERF_OUTSTANDING (500),
#        DNSPERF_EXTRA (extra dnsperf flags, e.g. "-e"), SERVER_CPU (0), CLIENT_CPU (1),
#        BASELINE_BIN (a second crossdns binary, e.g. an older commit's, measured in the
#        same interleaved rounds as "baseline" on BASELINE_PORT (15355): before/after figures
#        against the same knotd run)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
ROUNDS=3
DURATION=10
SERVICES=10000
EPS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) ROUNDS=1; DURATION=3; SERVICES=200 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --services) SERVICES=$2; shift ;;
        --endpoints-per-service) EPS=$2; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "--rounds must be 1..20" >&2; exit 2; }
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 120 ] || { echo "--duration must be 1..120" >&2; exit 2; }

WORK=${BENCH_DIR:-/tmp/crossdns-bench/dnsperf}
CPORT=${CROSSDNS_PORT:-15353}
KPORT=${KNOT_PORT:-15354}
CLIENTS=${DNSPERF_CLIENTS:-8}
OUTSTANDING=${DNSPERF_OUTSTANDING:-500}
SCPU=${SERVER_CPU:-0}
CCPU=${CLIENT_CPU:-1}
HZ=$(getconf CLK_TCK)
KNOTD=${KNOTD:-/usr/sbin/knotd}

require_tools dnsperf dig taskset python3 "$KNOTD"

# ---- build
build_crossdns

# ---- data
mkdir -p "$WORK"
DATA=$WORK/s$SERVICES-e$EPS
python3 "$HERE/gen_cluster.py" --services "$SERVICES" --endpoints-per-service "$EPS" \
    --out "$DATA" --crossdns-port "$CPORT" --knot-port "$KPORT"
# shellcheck disable=SC1091
PROBE=$(sed -n 's/^probe=//p' "$DATA/expected.txt")
PROBE_IP=$(sed -n 's/^probe_ip=//p' "$DATA/expected.txt")
NQ=$(sed -n 's/^queries=//p' "$DATA/expected.txt")
NMISS=$(sed -n 's/^missing_queries=//p' "$DATA/expected.txt")

# ---- servers
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin_all() { # every thread of $1 onto $SCPU
    local t
    for t in /proc/"$1"/task/*; do
        taskset -pc "$SCPU" "${t##*/}" >/dev/null 2>&1 || true
    done
}

cpu_ticks() { # utime+stime of the whole process (fields 14+15 of /proc/PID/stat)
    sed 's/^.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'
}

wait_ready() { # port pid name: until `dig` answers the probe name with its IP (60 s)
    local port=$1 pid=$2 name=$3 i
    for i in $(seq 1 240); do
        kill -0 "$pid" 2>/dev/null || { echo "$name exited during startup" >&2; return 1; }
        if dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$PROBE" A 2>/dev/null | grep -qxF "$PROBE_IP"; then
            echo "$name ready after ~$((i / 4)) s" >&2
            return 0
        fi
        sleep 0.25
    done
    echo "$name did not answer $PROBE within 60 s" >&2
    return 1
}

CROSSDNS_LOG=warn taskset -c "$SCPU" "$CROSSDNS_BIN" serve --config "$DATA/crossdns.yaml" \
    >"$WORK/crossdns.log" 2>&1 &
CPID=$!
PIDS+=("$CPID")
rm -rf "$DATA/knot/db" "$DATA/knot/run" && mkdir -p "$DATA/knot/db" "$DATA/knot/run"
taskset -c "$SCPU" "$KNOTD" -c "$DATA/knot/knot.conf" >"$WORK/knotd.log" 2>&1 &
KPID=$!
PIDS+=("$KPID")
BPORT=${BASELINE_PORT:-15355}
if [ -n "${BASELINE_BIN:-}" ]; then
    sed "s/127.0.0.1:$CPORT/127.0.0.1:$BPORT/" "$DATA/crossdns.yaml" >"$DATA/baseline.yaml"
    CROSSDNS_LOG=warn taskset -c "$SCPU" "$BASELINE_BIN" serve --config "$DATA/baseline.yaml" \
        >"$WORK/baseline.log" 2>&1 &
    BPID=$!
    PIDS+=("$BPID")
fi
wait_ready "$CPORT" "$CPID" crossdns || { tail -20 "$WORK/crossdns.log" >&2; exit 1; }
if [ -n "${BASELINE_BIN:-}" ]; then
    wait_ready "$BPORT" "$BPID" baseline || { tail -20 "$WORK/baseline.log" >&2; exit 1; }
    pin_all "$BPID"
fi
wait_ready "$KPORT" "$KPID" knotd || { tail -20 "$WORK/knotd.log" >&2; exit 1; }
pin_all "$CPID"
pin_all "$KPID"

# ---- same answers? (a sample of the query file, answer sections compared sorted)
MISMATCH=0
while read -r qname qtype; do
    a=$(dig +time=2 +tries=1 -p "$CPORT" @127.0.0.1 "$qname" "$qtype" +noall +comments +answer 2>&1 \
        | grep -E 'status:|IN' | sed -E 's/id: [0-9]+//' | sort)
    b=$(dig +time=2 +tries=1 -p "$KPORT" @127.0.0.1 "$qname" "$qtype" +noall +comments +answer 2>&1 \
        | grep -E 'status:|IN' | sed -E 's/id: [0-9]+//' | sort)
    if [ "$a" != "$b" ]; then
        MISMATCH=$((MISMATCH + 1))
        printf 'answers differ for %s %s\n--- crossdns\n%s\n--- knotd\n%s\n' "$qname" "$qtype" "$a" "$b" >&2
    fi
done < <(head -n 40 "$DATA/queries.txt")
echo "answer check: $MISMATCH of 40 sampled queries differ" >&2

# ---- interleaved runs
RESULTS=$WORK/results.tsv
printf 'server\tround\tqps\tcompleted\tlost\tcpu_ticks\tnoerror\tnxdomain\tother\n' >"$RESULTS"
run_one() { # name port pid round
    local name=$1 port=$2 pid=$3 round=$4 out before after
    pin_all "$pid"
    before=$(cpu_ticks "$pid")
    out=$(timeout $((DURATION + 30)) taskset -c "$CCPU" dnsperf -s 127.0.0.1 -p "$port" \
        -d "$DATA/queries.txt" -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" -T 1 \
        ${DNSPERF_EXTRA:-} 2>&1) || { echo "dnsperf failed against $name:" >&2; echo "$out" >&2; return 1; }
    after=$(cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || { echo "$name died during the run" >&2; return 1; }
    echo "$out" >"$WORK/dnsperf-$name-$round.txt"
    python3 - "$name" "$round" "$before" "$after" "$HZ" "$RESULTS" "$WORK/dnsperf-$name-$round.txt" <<'PY'
import re, sys
name, rnd, before, after, hz, results, path = sys.argv[1:]
text = open(path).read()
def num(pat, default=None):
    m = re.search(pat, text)
    if not m:
        if default is not None:
            return default
        sys.exit(f"cannot parse dnsperf output ({pat}):\n{text}")
    return m.group(1)
qps = float(num(r"Queries per second:\s+([\d.]+)"))
done = int(num(r"Queries completed:\s+(\d+)"))
lost = int(num(r"Queries lost:\s+(\d+)"))
codes = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+) \(", num(r"Response codes:\s+(.*)", "")))
ticks = int(after) - int(before)
noerr, nx = codes.pop("NOERROR", 0), codes.pop("NXDOMAIN", 0)
other = sum(codes.values())
us = ticks * 1e6 / int(hz) / max(done, 1)
print(f"{name:8} round {rnd}: {qps:10.0f} qps  completed {done:9d}  lost {lost:6d}  "
      f"server cpu {ticks / int(hz):6.2f} s = {us:5.2f} us/query  NOERROR {noerr} NXDOMAIN {nx} other {other}")
with open(results, "a") as f:
    f.write(f"{name}\t{rnd}\t{qps}\t{done}\t{lost}\t{ticks}\t{noerr}\t{nx}\t{other}\n")
PY
}

echo "dnsperf: $NQ queries in the file ($NMISS missing names), ${DURATION}s x $ROUNDS rounds, -c $CLIENTS -q $OUTSTANDING; servers on cpu $SCPU, dnsperf on cpu $CCPU, CLK_TCK=$HZ"
for r in $(seq 1 "$ROUNDS"); do
    run_one crossdns "$CPORT" "$CPID" "$r"
    if [ -n "${BASELINE_BIN:-}" ]; then run_one baseline "$BPORT" "$BPID" "$r"; fi
    run_one knotd "$KPORT" "$KPID" "$r"
done

python3 - "$RESULTS" "$HZ" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hz = int(sys.argv[2])
summary = {}
for name in ("crossdns", "baseline", "knotd"):
    rs = [r for r in rows if r["server"] == name]
    if not rs:
        continue
    qps = statistics.median(float(r["qps"]) for r in rs)
    us = statistics.median(int(r["cpu_ticks"]) * 1e6 / hz / max(int(r["completed"]), 1) for r in rs)
    done = sum(int(r["completed"]) for r in rs)
    nx = sum(int(r["nxdomain"]) for r in rs)
    other = sum(int(r["other"]) for r in rs)
    lost = sum(int(r["lost"]) for r in rs)
    summary[name] = (qps, us)
    print(f"{name:8} median {qps:10.0f} qps   median {us:5.2f} us server CPU/query   "
          f"NXDOMAIN share {100 * nx / max(done, 1):5.2f}%  other rcodes {other}  lost {lost}")
(cq, cu), (kq, ku) = summary["crossdns"], summary["knotd"]
print(f"ratio crossdns/knotd: qps {cq / kq:.2f}x   CPU per query {cu / ku:.2f}x")
if "baseline" in summary:
    bq, bu = summary["baseline"]
    print(f"ratio baseline/knotd: qps {bq / kq:.2f}x   CPU per query {bu / ku:.2f}x")
    print(f"crossdns vs baseline: CPU per query {100 * (cu / ku - bu / ku) / (bu / ku):+.1f}% (relative to knotd in the same run)")
PY
if [ "$MISMATCH" -ne 0 ]; then
    echo "WARNING: $MISMATCH sampled answers differ between crossdns and knotd" >&2
fi
