# shellcheck shell=bash
# Shared helpers for run.sh: logging, checks and the report, clocks, waiting, processes started
# inside the run's network namespaces, and teardown (also of runs that crashed).
#
# Every namespace of a run is named "$P<something>" with P="xdrg<id>-". A run records itself in
# $STATE_ROOT/<id>/owner (its PID); a later run removes whatever belongs to an id whose owner
# is dead. Only processes inside a run's own namespaces, or PIDs it recorded, are ever killed.

STATE_ROOT=/run/crossdns-regions

# ---- output -------------------------------------------------------------------------------
REPORT=()
PASSED=()
CURRENT_PHASE=setup

phase() {
  CURRENT_PHASE=$1
  printf '\n== %s (t=%ss)\n' "$*" "$(elapsed)"
  echo "$(now_ms) $1" >>"$RUN/phases"
}
info() { printf '   %s\n' "$*"; }
pass() {
  PASSED+=("$1")
  printf 'PASS %s: %s\n' "$1" "$2"
}
fail() {
  printf 'FAIL %s: %s\n' "$1" "$2"
  FAILED=$1
  if [ "${PAUSE:-0}" = 1 ]; then
    echo "Paused after the failure, everything still running; press Enter to tear down."
    read -r _ || true
  fi
  exit 1
}
report() { REPORT+=("$(printf '%-34s %s' "$1" "$2")"); }

print_report() {
  printf '\n==== crossdns regions demo: report ====\n'
  local line
  for line in "${REPORT[@]}"; do printf '%s\n' "$line"; done
  printf 'checks passed: %s (%s)\n' "${#PASSED[@]}" "${PASSED[*]}"
  if [ -n "${FAILED:-}" ]; then printf 'FAILED at: %s (phase %s)\n' "$FAILED" "$CURRENT_PHASE"; fi
  if [ -n "${STOPPED:-}" ]; then printf 'stopped: %s\n' "$STOPPED"; fi
}

# ---- clocks -------------------------------------------------------------------------------
# Milliseconds since the epoch, without forking.
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
START_MS=0
elapsed() { local n; n=$(now_ms); printf '%d.%d' $(((n - START_MS) / 1000)) $(((n - START_MS) % 1000 / 100)); }
# ms → "1.234 s"
secs() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }

# wait_until SECONDS DESCRIPTION CMD...: run CMD every 100 ms until it succeeds; 1 on timeout.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + limit * 1000))
  until "$@" >/dev/null 2>&1; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      info "timed out after ${limit}s waiting for: $what"
      return 1
    fi
    sleep 0.1
  done
}

# ---- namespaces and processes -------------------------------------------------------------
nsx() {
  local ns=$1
  shift
  ip netns exec "$P$ns" "$@"
}

# start NAME NETNS CMD...: run CMD in the namespace, output to $LOGS/NAME.log, PID recorded.
# `ip netns exec` execs CMD, so $! is CMD's own PID.
start() {
  local name=$1 ns=$2
  shift 2
  ip netns exec "$P$ns" "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/pids/$name"
  # Not a job of this shell: teardown kills it by PID and namespace, and bash stays quiet
  # about the ones that needed SIGKILL.
  disown $!
}

pid_of() { cat "$RUN/pids/$1" 2>/dev/null; }

# stop NAME [SIGNAL]: signal a recorded process and wait up to 5 s for it to go.
stop() {
  local pid
  pid=$(pid_of "$1") || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$RUN/pids/$1"
}

# Kill every process inside the namespaces given (all of them were started by the run owning
# them): SIGTERM to all at once, then SIGKILL to what is left after 3 s.
kill_netns_procs() {
  local ns pids=""
  for ns in "$@"; do pids+=" $(ip netns pids "$ns" 2>/dev/null || true)"; done
  [ -n "${pids// /}" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  local pid alive
  for _ in $(seq 30); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive+=" $pid"; done
    [ -n "$alive" ] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $alive 2>/dev/null || true
}

# Remove everything of the run with prefix $1 (namespaces, their processes, /etc/netns files).
remove_prefix() {
  local prefix=$1 ns all
  all=$(ip netns list | awk '{print $1}' | grep "^$prefix" || true)
  # shellcheck disable=SC2086
  kill_netns_procs $all
  for ns in $all; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf /etc/netns/"$prefix"*
}

# Runs that died without tearing down: their owner PID is gone.
clean_leftovers() {
  mkdir -p "$STATE_ROOT"
  local d id owner
  for d in "$STATE_ROOT"/*/; do
    [ -d "$d" ] || continue
    id=$(basename "$d")
    owner=$(cat "$d/owner" 2>/dev/null || echo 0)
    if [ "$owner" != 0 ] && kill -0 "$owner" 2>/dev/null; then continue; fi
    info "removing leftovers of an earlier run ($id, owner $owner gone)"
    remove_prefix "xdrg$id-"
    rm -rf "$(cat "$d/rundir" 2>/dev/null || echo /nonexistent)" "$d"
  done
  # Namespaces of a run whose record is gone entirely (it died during teardown).
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep '^xdrg' || true); do
    id=${ns#xdrg}
    id=${id%%-*}
    [ -d "$STATE_ROOT/$id" ] && continue
    info "removing orphaned namespace $ns"
    kill_netns_procs "$ns"
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
}

# Where `set -e` stopped the run, for the report (the parent shell's last failing command).
LAST_ERR=""
trap 'LAST_ERR="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR

teardown() {
  local rc=$?
  trap - EXIT INT TERM ERR
  set +e
  if [ "$rc" != 0 ] && [ -z "${FAILED:-}" ] && [ -z "${STOPPED:-}" ]; then
    FAILED=script
    printf 'FAIL script: stopped with status %s at %s\n' "$rc" "${LAST_ERR:-?}"
  fi
  # Background helpers (pollers, probers) run in this shell's process group as jobs.
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null; done
  local f
  for f in "$RUN"/pids/*; do
    [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
  done
  remove_prefix "$P"
  wait 2>/dev/null
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS" && cp -r "$LOGS/." "$KEEP_LOGS/" 2>/dev/null
  fi
  print_report
  rm -rf "${RUN:?}" "${STATE_ROOT:?}/${ID:?}"
  exit "$rc"
}
