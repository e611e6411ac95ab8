# shellcheck shell=bash
# How the run looks at things: DNS questions from inside a pod, waiting for an answer to
# change, timestamps from the processes' logs, and the clients that run in the background
# (pods resolving names, a client writing) with the summary of what they saw.

# ---- DNS helpers --------------------------------------------------------------------------
# dig_a NETNS SERVER NAME: the sorted A records (one line, space-separated), or the RCODE.
dig_a() {
  local out
  out=$(nsx "$1" dig +time=2 +tries=1 +noall +answer +comments "@$2" "$3" A 2>/dev/null) || {
    echo TIMEOUT
    return
  }
  local rcode
  rcode=$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$out" | head -1)
  if [ "$rcode" != NOERROR ]; then
    echo "${rcode:-NOANSWER}"
    return
  fi
  awk '$4 == "A" {print $5}' <<<"$out" | sort | tr '\n' ' ' | sed 's/ $//'
}

# srv_targets NETNS SERVER NAME: the SRV targets, sorted, one line.
srv_targets() {
  nsx "$1" dig +time=2 +tries=1 +short "@$2" "$3" SRV 2>/dev/null | awk '{print $4}' | sort |
    tr '\n' ' ' | sed 's/ $//'
}

SRV_CS="_etcd-client-ssl._tcp.$SERVICE_CS"

# How many SRV targets of the clusterset name are in region $4.
srv_count_in() { srv_targets "$1" "$2" "$3" | tr ' ' '\n' | grep -c "\.region$4\.etcd\." || true; }

# poll_until OUT LIMIT_S CMD...: in the background, run CMD every 20 ms until it succeeds, then
# write "<ms when the first success returned> <ms when the last failure was started>" to OUT
# ("timeout" after LIMIT_S). The change it waits for happened between the two. OUT is added
# to POLLS.
POLLS=()
poll_until() {
  local out=$1 limit=$2
  shift 2
  rm -f "$out"
  POLLS+=("$out")
  (
    deadline=$(($(now_ms) + limit * 1000))
    before=0
    while :; do
      started=$(now_ms)
      if "$@" >/dev/null 2>&1; then break; fi
      before=$started
      if [ "$started" -ge "$deadline" ]; then
        echo timeout >"$out"
        exit 0
      fi
      sleep 0.02
    done
    echo "$(now_ms) $before" >"$out"
  ) &
}

# wait_polls LIMIT_S: until every poll in POLLS has written its file; POLLS is then emptied.
wait_polls() {
  local limit=$1 f
  local deadline=$(($(now_ms) + limit * 1000))
  for f in "${POLLS[@]}"; do
    until [ -s "$f" ]; do
      [ "$(now_ms)" -lt "$deadline" ] || return 1
      sleep 0.05
    done
  done
  POLLS=()
}

kdns_ip() { echo "10.200.$1.$KDNS_OCTET"; }
xdns_ip() { echo "10.200.$1.${XDNS_OCTET[$2]}"; }

# A host of region r to ask from: a pod that never moves or restarts.
asker() { echo "r$1-etcd-0"; }

# log_ms FILE TEXT AFTER_MS: the time (ms) of the first line of a tracing log that contains TEXT
# and is not older than AFTER_MS.
log_ms() {
  local ts rest ms
  grep -F -- "$2" "$1" 2>/dev/null | while read -r ts rest; do
    ms=$(date -d "$ts" +%s%3N 2>/dev/null) || continue
    if [ "$ms" -ge "$3" ]; then
      echo "$ms"
      break
    fi
  done
}

# publish_line SITE REGION: what region SITE's crossdns logs (at debug) when it publishes new
# data of REGION: a snapshot built from the watch, or in site mode for another region, a zone
# transfer applied.
publish_line() {
  if [ "$MODE" = site ] && [ "$1" != "$2" ]; then
    echo "transfer applied cluster=region$2 "
  else
    echo "published snapshot cluster=region$2 "
  fi
}

answers_ip() { [ "$(dig_a "$1" "$2" "$3")" = "$4" ]; }
answers_nx() { [ "$(dig_a "$1" "$2" "$3")" = NXDOMAIN ]; }

# srv_has NETNS SERVER REGION N: the clusterset SRV answer holds N members of REGION.
srv_has() { [ "$(srv_count_in "$1" "$2" "$SRV_CS" "$3")" = "$4" ]; }

# since FILE T: ms from T to the first success recorded in FILE; before FILE T: to the last failure.
since() { echo $(($(cut -d' ' -f1 "$1") - $2)); }
before() { echo $(($(cut -d' ' -f2 "$1") - $2)); }

# ---- what runs in the background: pods resolving, a client writing --------------------------
WRITER_PID=""

# Region 1's members by their clusterset names: how clients in region 1 reach the database.
region_endpoints() {
  local r=$1 i out=""
  for i in $(seq 0 $((PODS - 1))); do out+="https://$(pod_cs_name "$r" "$i"):2379,"; done
  echo "${out%,}"
}

start_background_clients() {
  phase clients
  local r s i names=()
  for s in "${REGIONS[@]}"; do
    for i in $(seq 0 $((PODS - 1))); do names+=("$(pod_name "$s" "$i")" "$(pod_cs_name "$s" "$i")"); done
  done
  # Short names as applications write them go through the search path: "etcd" is the region's
  # own Service; the clusterset Service name has 4 dots (< ndots:5), so its search-path
  # expansions are asked first and come back NXDOMAIN, which kube-dns never caches.
  names+=(etcd "$SERVICE_CS")
  # One application per region resolving these names through getaddrinfo, 10 a second.
  for r in "${REGIONS[@]}"; do
    start "probe-r$r" "$(asker "$r")" "$PYTHON" "$HERE/probe.py" 100 "${names[@]}"
  done
  # A client in region 1 writing a key three times a second through its region's members.
  local eps
  eps=$(region_endpoints 1)
  (
    n=0
    while :; do
      n=$((n + 1))
      t0=$(now_ms)
      if ctl "$(asker 1)" --endpoints "$eps" --command-timeout 3s put demo/writer "$n" >/dev/null 2>&1; then
        res=OK
      else
        res=FAIL
      fi
      echo "$t0 $(($(now_ms) - t0)) $res" >>"$LOGS/writer.log"
      sleep 0.3
    done
  ) &
  WRITER_PID=$!
  sleep 1
  info "probes: getaddrinfo of ${#names[@]} member names from a pod in each region; writer: region1 -> demo/writer"
}

stop_background_clients() {
  local r
  for r in "${REGIONS[@]}"; do stop "probe-r$r"; done
  [ -z "$WRITER_PID" ] || { kill "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null || true; }
}

# writes_in FROM_MS TO_MS: "<writes> <failed> <longest gap between successful writes, ms>".
writes_in() {
  awk -v a="$1" -v b="$2" '
    $1 >= a && $1 <= b { n++; if ($3 == "OK") { if (last && $1 + $2 - last > gap) gap = $1 + $2 - last; last = $1 + $2 } else f++ }
    END { printf "%d %d %d\n", n, f, gap }' "$LOGS/writer.log"
}


# ---- every lookup the pods made -----------------------------------------------------------
summarize_pod_queries() {
  phase pod-queries
  local moved moved_cs r total=0 bad=0 out
  moved=$(pod_name "$MOVE_REGION" "$MOVE_INDEX")
  moved_cs=$(pod_cs_name "$MOVE_REGION" "$MOVE_INDEX")
  for r in "${REGIONS[@]}"; do
    # A failed lookup is expected only for the moved pod's names while it had no endpoint.
    out=$(awk -v m1="$moved" -v m2="$moved_cs" -v a="$MOVE_GONE_MS" -v b="$MOVE_FOLLOWED_MS" '
      NR == FNR { ps[np] = $1; pn[np] = $2; np++; next }
      {
        ph = "?"; for (k = 0; k < np; k++) if (ps[k] <= $1) ph = pn[k]
        n++; if ($2 > worst) { worst = $2; wph = ph }
        if ($4 == "OK") next
        if (($3 == m1 || $3 == m2) && $1 >= a && $1 <= b) { expected++; next }
        unexpected++; if (unexpected <= 5) list = list sprintf(" [%s %s %s %s]", ph, $3, $5, $2 "ms")
      }
      END { printf "%d %d %d %d %s%s\n", n, expected, unexpected, worst, wph, list }' "$RUN/phases" "$LOGS/probe-r$r.log")
    local n expected unexpected worst wph rest
    read -r n expected unexpected worst wph rest <<<"$out"
    total=$((total + n))
    bad=$((bad + unexpected))
    report "pod lookups in region$r" "$n, $expected failed as expected (moved pod's names while it had no endpoint), $unexpected other failures${rest:+:$rest}; slowest $(secs "$worst") ($wph)"
  done
  [ "$bad" = 0 ] || fail pod-queries "$bad of $total lookups from pods failed unexpectedly (see the report)"
  pass pod-queries "$total lookups from pods in all regions over the whole run; none failed except the moved pod's names while it was gone"
}
