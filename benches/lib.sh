# Shared by the benchmark scripts: `. "$HERE/lib.sh"` after setting ROOT.

# require_tools TOOL... : exits with a message naming the first one missing.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
    done
}

# build_crossdns: sets CROSSDNS_BIN, building the release binary into
# CARGO_TARGET_DIR (default /tmp/target-bench) unless CROSSDNS_BIN is given.
build_crossdns() {
    if [ -z "${CROSSDNS_BIN:-}" ]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
        echo "building crossdns (release, $CARGO_TARGET_DIR)..." >&2
        (cd "$ROOT" && timeout 3600 cargo build --release --quiet --bin crossdns)
        CROSSDNS_BIN=$CARGO_TARGET_DIR/release/crossdns
    fi
    [ -x "$CROSSDNS_BIN" ] || { echo "not executable: $CROSSDNS_BIN" >&2; exit 1; }
}

# build_fake_apiserver: sets FAKE_APISERVER_BIN (the test apiserver,
# tests/fake-apiserver), built like build_crossdns unless given.
build_fake_apiserver() {
    if [ -z "${FAKE_APISERVER_BIN:-}" ]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
        echo "building fake-apiserver (release, $CARGO_TARGET_DIR)..." >&2
        (cd "$ROOT" && timeout 3600 cargo build --release --quiet -p fake-apiserver --bin fake-apiserver)
        FAKE_APISERVER_BIN=$CARGO_TARGET_DIR/release/fake-apiserver
    fi
    [ -x "$FAKE_APISERVER_BIN" ] || { echo "not executable: $FAKE_APISERVER_BIN" >&2; exit 1; }
}

# http_code URL: the HTTP status URL answers (000 when nothing answers).
http_code() {
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

# status_kb PID FIELD: a /proc/PID/status field in kB (VmRSS, VmHWM).
status_kb() { awk -v k="$2:" '$1 == k {print $2}' /proc/"$1"/status; }

# metric_sum URL NAME [LABEL]: the sum of NAME's samples (those whose labels
# contain LABEL, e.g. 'type="axfr"') in the /metrics text at URL.
metric_sum() {
    python3 - "$1" "$2" "${3:-}" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith(sys.argv[2] + "{") and sys.argv[3] in l)))
PY
}

# wait_ready PID ADMIN_PORT LOG [SECONDS]: waits until the crossdns PID
# answers /readyz 200 (default: up to 600 s); fails, with LOG's tail, if it
# exits or never gets ready.
wait_ready() {
    local pid=$1 port=$2 log=$3 limit=${4:-600} i code=000
    for i in $(seq 1 $((limit * 2))); do
        kill -0 "$pid" 2>/dev/null || { echo "crossdns exited:" >&2; tail -20 "$log" >&2; return 1; }
        code=$(http_code "http://127.0.0.1:$port/readyz")
        [ "$code" = 200 ] && return 0
        sleep 0.5
    done
    echo "crossdns ($log): /readyz not 200 after $limit s" >&2
    return 1
}

# The cluster helpers below use the caller's globals: HERE (benches/), WORK
# (the bench's folder), CLUSTERS (how many, named c1..cN with zones
# cluster.cN), REALISTIC (--realistic or empty, passed to gen_cluster.py),
# FAKE_APISERVER_BIN and FAKES (the test apiservers' pids), DPORT (where
# all_answer asks).

# generate label services eps -> $WORK/$label/c{1..3} (gen_cluster.py, once per label)
generate() {
    local label=$1 n=$2 m=$3 c
    for c in $(seq 1 "$CLUSTERS"); do
        [ -f "$WORK/$label/c$c/expected.txt" ] && grep -qx "services=$n" "$WORK/$label/c$c/expected.txt" \
            && grep -qx "endpoints=$((n * m))" "$WORK/$label/c$c/expected.txt" \
            && [ "$(cat "$WORK/$label/c$c/realistic" 2>/dev/null)" = "$REALISTIC" ] && continue
        python3 "$HERE/gen_cluster.py" --services "$n" --endpoints-per-service "$m" $REALISTIC \
            --out "$WORK/$label/c$c" --zone "cluster.c$c" --cluster-name "c$c" 2>/dev/null
        echo "$REALISTIC" >"$WORK/$label/c$c/realistic"
    done
}

# start_fakes label: one test apiserver per cluster, loaded with its manifests;
# sets FAKES (pids) and writes $WORK/$label/cN.kubeconfig
start_fakes() {
    local label=$1 c kc i
    FAKES=()
    for c in $(seq 1 "$CLUSTERS"); do
        kc=$WORK/$label/c$c.kubeconfig
        rm -f "$kc"
        RUST_LOG=warn "$FAKE_APISERVER_BIN" --manifests "$WORK/$label/c$c/manifests" \
            --kubeconfig-out "$kc" --context "c$c" >"$WORK/$label/fake-c$c.log" 2>&1 &
        FAKES+=($!)
    done
    for c in $(seq 1 "$CLUSTERS"); do
        for i in $(seq 1 1200); do [ -s "$WORK/$label/c$c.kubeconfig" ] && break; sleep 0.25; done
        [ -s "$WORK/$label/c$c.kubeconfig" ] || { echo "fake apiserver c$c never wrote its kubeconfig" >&2; return 1; }
    done
}

stop_fakes() {
    local p
    for p in "${FAKES[@]}"; do kill "$p" 2>/dev/null || true; timeout 10 tail --pid="$p" -f /dev/null || true; done
    FAKES=()
}

# compact label: POST /_fake/compact to every test apiserver (410 on every open watch)
compact_all() {
    python3 - "$HERE" "$WORK/$1" "$CLUSTERS" <<'PY'
import base64, ssl, sys, urllib.request
sys.path.insert(0, sys.argv[1])
from soak import read_kubeconfig
work, n = sys.argv[2], int(sys.argv[3])
for c in range(1, n + 1):
    kc = read_kubeconfig(f"{work}/c{c}.kubeconfig")
    ctx = ssl.create_default_context(cadata=base64.b64decode(kc["certificate-authority-data"]).decode())
    req = urllib.request.Request(kc["server"] + "/_fake/compact", method="POST",
                                 headers={"Authorization": "Bearer " + kc["token"]})
    urllib.request.urlopen(req, context=ctx, timeout=10).read()
PY
}

# all_answer what: every cluster's zone answers its first Service
all_answer() {
    local c
    for c in $(seq 1 "$CLUSTERS"); do
        dig +short +time=2 +tries=1 -p "$DPORT" @127.0.0.1 "svc-1.ns-1.svc.cluster.c$c" A | grep -qx 10.96.0.1 \
            || { echo "$1: cluster c$c does not answer" >&2; return 1; }
    done
}
