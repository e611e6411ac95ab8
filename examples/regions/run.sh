#!/usr/bin/env bash
# A real etcd cluster across three simulated regions, named and certified by crossdns.
# See README.md beside this file. Needs root (network namespaces), iproute2, dnsmasq, dig,
# etcd + etcdctl, openssl, curl, jq, python3 with dnspython, and the crossdns and
# fake-apiserver binaries (cargo build --workspace).
#
# usage: run.sh [--mode watch-all|site] [--keep-logs DIR] [--pause]
#   --mode watch-all   every region's crossdns watches every region's apiserver (default)
#   --mode site        each region's crossdns watches only its own apiserver and follows the
#                      others by zone transfer (design.md §7): NOTIFY and IXFR over DNS over
#                      TLS, signed with a TSIG key
#   --keep-logs DIR    copy every process's log to DIR before tearing down
#   --pause            stop before the teardown (and before the scenarios) until Enter is pressed
#
# Exit status: 0 when every check passed, 1 when one failed (the report says which), 2 for bad
# usage or a missing prerequisite.

# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=watch-all
KEEP_LOGS=""
PAUSE=0
while [ $# -gt 0 ]; do
  case $1 in
    --mode) MODE=${2:?--mode needs a value}; shift 2 ;;
    --keep-logs) KEEP_LOGS=${2:?--keep-logs needs a directory}; shift 2 ;;
    --pause) PAUSE=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

CROSSDNS=${CROSSDNS:-$ROOT/target/debug/crossdns}
FAKE_APISERVER=${FAKE_APISERVER:-$ROOT/target/debug/fake-apiserver}
ETCD=${ETCD:-etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
# Debian's python3 (python3-dnspython is a Debian package); any python3 with dnspython works.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}

REGIONS=(1 2 3)
PODS=3              # etcd replicas per region: 9 members, so losing a region keeps quorum
DELAY_MS=10         # one way per WAN crossing: 20 ms round trip between regions
STALE_AFTER_S=5     # clusterset.stale_after
POLL_S=1            # site mode: the primary: sources' SOA check interval (poll)
MOVE_REGION=2       # the pod that moves: etcd-1 of region 2
MOVE_INDEX=1
CUT_REGION=3        # the region cut off from the WAN
RESTART_REGION=1    # the region whose crossdns replicas are restarted
declare -A POD_IP=()

# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/topology.sh
. "$HERE/lib/topology.sh"
# shellcheck source=lib/control.sh
. "$HERE/lib/control.sh"
# shellcheck source=lib/etcd.sh
. "$HERE/lib/etcd.sh"
# shellcheck source=lib/observe.sh
. "$HERE/lib/observe.sh"
# shellcheck source=lib/scenarios.sh
. "$HERE/lib/scenarios.sh"

# ---- prerequisites ------------------------------------------------------------------------
case $MODE in
  watch-all | site) ;;
  *) echo "--mode must be watch-all or site, not $MODE" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run.sh needs root (it creates network namespaces)" >&2; exit 2; }
missing=()
for tool in ip tc dnsmasq dig "$ETCD" "$ETCDCTL" openssl curl jq "$PYTHON" "$CROSSDNS" "$FAKE_APISERVER"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
"$PYTHON" -c 'import dns.message' 2>/dev/null || missing+=("dnspython for $PYTHON (python3-dnspython)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} (build the binaries with: cargo build --workspace)" >&2
  exit 2
fi

# ---- the run's identity and its teardown --------------------------------------------------
clean_leftovers
ID=$(printf '%04x' $((($$ ^ RANDOM) & 0xffff)))
while [ -d "$STATE_ROOT/$ID" ]; do ID=$(printf '%04x' $((RANDOM & 0xffff))); done
P="xdrg$ID-"
# etcd's data lives in memory when /dev/shm has room (nine members preallocate 64 MiB WALs).
BASE=${TMPDIR:-/tmp}
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt $((2 * 1024 * 1024)) ] 2>/dev/null; then
  BASE=/dev/shm
fi
RUN=$(mktemp -d "$BASE/crossdns-regions.$ID.XXXX")
LOGS="$RUN/logs"
mkdir -p "$STATE_ROOT/$ID" "$LOGS" "$RUN/pids"
echo $$ >"$STATE_ROOT/$ID/owner"
echo "$RUN" >"$STATE_ROOT/$ID/rundir"
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
START_MS=$(now_ms)

echo "crossdns regions demo: run $ID in $RUN (namespaces ${P}*)"
report "run" "$ID, mode $MODE, $((${#REGIONS[@]} * PODS)) etcd members in ${#REGIONS[@]} regions"

phase network
make_network
make_pods
report "WAN delay" "$WAN_DELAY_HOW"

phase control-planes
start_control_planes
start_kube_dnses
check_wan_delay

phase etcd
make_certs
make_initial_cluster
form_cluster

if [ "$PAUSE" = 1 ]; then pause_here; fi

start_background_clients
check_key_across_regions
scenario_pod_move
scenario_region_cut
scenario_crossdns_restart
stop_background_clients
summarize_pod_queries

phase finished
report "total run time" "$(elapsed) s"
if [ "$PAUSE" = 1 ]; then pause_here; fi
