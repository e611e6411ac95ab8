# shellcheck shell=bash
# The etcd StatefulSet's pods: one namespace per pod with resolv.conf as kubelet writes it,
# certificates whose SANs are `crossdns generate sans`, and one real etcd member each, started
# with --initial-cluster from `crossdns generate join`.
#
#   pod etcd-<i> of region r: namespace r<r>-etcd-<i>, IP 10.200.r.(11+i) (10.200.r.(21+i) after
#   a move), name etcd-<i>.etcd.default.svc.cluster.region<r>

SERVICE_CS=etcd.default.svc.clusterset.local

pod_name() { echo "etcd-$2.etcd.default.svc.cluster.region$1"; }
pod_cs_name() { echo "etcd-$2.region$1.etcd.default.svc.clusterset.local"; }

# make_pod REGION INDEX IP: the pod's namespace and its resolv.conf, exactly as kubelet writes it
# for a pod in namespace "default" with dnsPolicy ClusterFirst (no host search domains here).
make_pod() {
  local r=$1 i=$2 ip=$3
  add_host "$r" "etcd-$i" "$ip"
  mkdir -p "/etc/netns/${P}r$r-etcd-$i"
  cat >"/etc/netns/${P}r$r-etcd-$i/resolv.conf" <<EOF
search default.svc.cluster.region$r svc.cluster.region$r cluster.region$r
nameserver 10.200.$r.$KDNS_OCTET
options ndots:5
EOF
  # shellcheck disable=SC2034,SC2004 # POD_IP is run.sh's; "$r,$i" is an associative key
  POD_IP[$r,$i]=$ip
}

make_pods() {
  local r i
  for r in "${REGIONS[@]}"; do
    for i in $(seq 0 $((PODS - 1))); do make_pod "$r" "$i" "10.200.$r.$((11 + i))"; done
  done
}

# ---- certificates -------------------------------------------------------------------------
TLS="" # set by make_certs

# "localhost\n127.0.0.1\nname..." -> "DNS:localhost,IP:127.0.0.1,DNS:name,..."
san_ext() {
  local line out=""
  while read -r line; do
    [ -n "$line" ] || continue
    if [[ $line =~ ^[0-9.]+$ || $line == *:* ]]; then out+="IP:$line,"; else out+="DNS:$line,"; fi
  done
  echo "${out%,}"
}

# The SANs of a certificate, one per line, in certificate order.
cert_sans() {
  openssl x509 -in "$1" -noout -ext subjectAltName | tail -n +2 | tr ',' '\n' |
    sed -e 's/^ *//' -e 's/^DNS://' -e 's/^IP Address://'
}

issue_cert() {
  local dir=$1 cn=$2 eku=$3 sans=$4
  mkdir -p "$dir"
  {
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = critical, digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $eku"
    [ -z "$sans" ] || echo "subjectAltName = $sans"
  } >"$dir/ext.cnf"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$cn" 2>/dev/null
  openssl x509 -req -in "$dir/tls.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 2 -out "$dir/tls.crt" -extfile "$dir/ext.cnf" 2>/dev/null
}

make_ca() {
  TLS="$RUN/tls"
  mkdir -p "$TLS"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$TLS/ca.key" -out "$TLS/ca.crt" -days 2 -subj "/CN=crossdns regions demo CA" 2>/dev/null
}

make_certs() {
  [ -n "$TLS" ] || make_ca
  # What an operator runs against the live clusters (here from region1's crossdns host).
  nsx r1-xdns-a "$CROSSDNS" generate sans --config "$(generate_config)" \
    --statefulset default/etcd >"$RUN/sans.txt" 2>"$LOGS/generate-sans.log" ||
    fail certificates "generate sans failed: $(tail -1 "$LOGS/generate-sans.log")"
  local sans r i
  sans=$(san_ext <"$RUN/sans.txt")
  for r in "${REGIONS[@]}"; do
    for i in $(seq 0 $((PODS - 1))); do
      # One key and certificate per member (its Secret), used for peer and client traffic.
      issue_cert "$RUN/r$r/etcd-$i/tls" "$(pod_name "$r" "$i")" "serverAuth, clientAuth" "$sans"
      cmp -s <(cert_sans "$RUN/r$r/etcd-$i/tls/tls.crt") <(grep -v '^$' "$RUN/sans.txt") ||
        fail certificates "the certificate of $(pod_name "$r" "$i") does not carry exactly the generated SANs"
    done
  done
  issue_cert "$TLS/client" etcdctl clientAuth ""
  for r in "${REGIONS[@]}"; do
    for i in $(seq 0 $((PODS - 1))); do
      if ! grep -qx "$(pod_name "$r" "$i")" "$RUN/sans.txt" || ! grep -qx "$(pod_cs_name "$r" "$i")" "$RUN/sans.txt"; then
        fail certificates "generate sans lacks $(pod_name "$r" "$i") or $(pod_cs_name "$r" "$i")"
      fi
    done
  done
  pass certificates "one CA; $((${#REGIONS[@]} * PODS)) member certificates whose SANs are exactly the $(grep -c . "$RUN/sans.txt") lines of generate sans"
}

# ---- members ------------------------------------------------------------------------------
INITIAL_CLUSTER=""

make_initial_cluster() {
  nsx r1-xdns-a "$CROSSDNS" generate join --config "$(generate_config)" \
    --statefulset default/etcd --port 2380 >"$RUN/join.txt" 2>"$LOGS/generate-join.log" ||
    fail join-list "generate join failed: $(tail -1 "$LOGS/generate-join.log")"
  local entry host n=0
  local -a entries
  IFS=, read -ra entries <"$RUN/join.txt"
  for entry in "${entries[@]}"; do
    host=${entry%:2380}
    [ "$host" != "$entry" ] || fail join-list "join entry '$entry' does not end in :2380"
    INITIAL_CLUSTER+="$host=https://$entry,"
    n=$((n + 1))
  done
  INITIAL_CLUSTER=${INITIAL_CLUSTER%,}
  local r i
  for r in "${REGIONS[@]}"; do
    for i in $(seq 0 $((PODS - 1))); do
      [[ ",$(cat "$RUN/join.txt")," == *",$(pod_name "$r" "$i"):2380,"* ]] ||
        fail join-list "generate join lacks $(pod_name "$r" "$i"):2380"
    done
  done
  [ "$n" = $((${#REGIONS[@]} * PODS)) ] || fail join-list "generate join printed $n members"
  pass join-list "--initial-cluster from generate join --port 2380: $n per-cluster names"
}

start_member() {
  local r=$1 i=$2 dir="$RUN/r$1/etcd-$2"
  local name cs
  name=$(pod_name "$r" "$i")
  cs=$(pod_cs_name "$r" "$i")
  mkdir -p "$dir/data"
  # Heartbeat and election timeout sized for a 20 ms WAN on a loaded 2-core machine; pre-vote
  # keeps a region that was cut off from deposing the leader when it comes back.
  start "etcd-r$r-$i" "r$r-etcd-$i" "$ETCD" --name "$name" --data-dir "$dir/data" \
    --listen-peer-urls https://0.0.0.0:2380 --listen-client-urls https://0.0.0.0:2379 \
    --initial-advertise-peer-urls "https://$name:2380" \
    --advertise-client-urls "https://$cs:2379" \
    --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state new \
    --initial-cluster-token "crossdns-regions-$ID" \
    --cert-file "$dir/tls/tls.crt" --key-file "$dir/tls/tls.key" \
    --trusted-ca-file "$TLS/ca.crt" --client-cert-auth \
    --peer-cert-file "$dir/tls/tls.crt" --peer-key-file "$dir/tls/tls.key" \
    --peer-trusted-ca-file "$TLS/ca.crt" --peer-client-cert-auth \
    --heartbeat-interval 200 --election-timeout 2000 --pre-vote \
    --logger zap --log-outputs stderr
}

# ctl NETNS ARGS...: etcdctl in a pod, through the pod's own resolver, verifying certificates
# (and the host names in them) against the demo CA.
ctl() {
  local ns=$1
  shift
  nsx "$ns" env ETCDCTL_API=3 "$ETCDCTL" --cacert "$TLS/ca.crt" --cert "$TLS/client/tls.crt" \
    --key "$TLS/client/tls.key" --dial-timeout 3s --command-timeout 5s "$@"
}

# The whole cluster as clients in every region find it: SRV records of the clusterset name.
# --endpoints= so that a failed discovery is an error, not etcdctl's default 127.0.0.1:2379
# (which inside a member's pod is that member itself).
ctl_cs() {
  local ns=$1
  shift
  ctl "$ns" --endpoints= --discovery-srv "$SERVICE_CS" "$@"
}

# healthy_count NETNS: how many members `endpoint health --cluster` finds healthy: the member
# list comes through the discovered endpoints, then each member is checked at its advertised
# client URL (its clusterset name).
healthy_count() {
  ctl_cs "$1" endpoint health --cluster 2>&1 | grep -c '^https://.* is healthy' || true
}

all_healthy() { [ "$(healthy_count "$1")" = "$2" ]; }
