# shellcheck shell=bash
# Each region's control plane: the test apiserver holding the region's objects, two crossdns
# replicas configured for every region, and kube-dns's dnsmasq configured from
# `crossdns generate kube-dns`.
#
#   10.200.r.2   apiserver (fake-apiserver, real list/watch over TLS)     namespace r<r>-api
#   10.200.r.10  kube-dns (dnsmasq as dnsmasq-nanny runs it)              namespace r<r>-kdns
#   10.200.r.53  crossdns replica a                                        namespace r<r>-xdns-a
#   10.200.r.54  crossdns replica b                                        namespace r<r>-xdns-b
#   10.200.r.11+ the etcd pods (see etcd.sh)

API_PORT=6443
KDNS_OCTET=10
declare -A XDNS_OCTET=([a]=53 [b]=54)

# ---- the region's objects -----------------------------------------------------------------
write_atomic() {
  local file=$1 dir
  dir=$(dirname "$file")
  cat >"$dir/.$(basename "$file").tmp"
  mv "$dir/.$(basename "$file").tmp" "$file"
}

write_service_and_statefulset() {
  local r=$1 dir="$RUN/r$1/manifests"
  mkdir -p "$dir"
  write_atomic "$dir/etcd-service.yaml" <<EOF
# The headless Service governing the StatefulSet: one name per pod, and the named ports that
# become SRV records (_etcd-client-ssl._tcp is what etcdctl --discovery-srv asks for).
apiVersion: v1
kind: Service
metadata:
  name: etcd
  namespace: default
  annotations:
    # Clients want every member, not only the local region's.
    crossdns.io/policy: round-robin
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: etcd}
  ports:
    - {name: etcd-server-ssl, port: 2380, protocol: TCP}
    - {name: etcd-client-ssl, port: 2379, protocol: TCP}
EOF
  write_atomic "$dir/etcd-statefulset.yaml" <<EOF
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: etcd
  namespace: default
spec:
  serviceName: etcd
  replicas: $PODS
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: etcd}
  template:
    metadata:
      labels: {app: etcd}
    spec:
      containers:
        - name: etcd
          image: quay.io/coreos/etcd:v3.4.23
          ports:
            - {name: etcd-server-ssl, containerPort: 2380}
            - {name: etcd-client-ssl, containerPort: 2379}
EOF
}

# The EndpointSlice as the EndpointSlice controller writes it from the region's pods: one
# endpoint per pod that exists, with its IP and its hostname (etcd-<i>).
write_endpointslice() {
  local r=$1 i ip
  {
    cat <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: etcd-r$r
  namespace: default
  labels:
    kubernetes.io/service-name: etcd
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: IPv4
ports:
  - {name: etcd-server-ssl, port: 2380, protocol: TCP}
  - {name: etcd-client-ssl, port: 2379, protocol: TCP}
endpoints:
EOF
    for i in $(seq 0 $((PODS - 1))); do
      ip=${POD_IP[$r,$i]:-}
      [ -n "$ip" ] || continue
      cat <<EOF
  - addresses: ["$ip"]
    hostname: etcd-$i
    conditions: {ready: true, serving: true, terminating: false}
    targetRef: {kind: Pod, namespace: default, name: etcd-$i}
EOF
    done
  } | write_atomic "$RUN/r$r/manifests/etcd-endpointslice.yaml"
}

start_apiserver() {
  local r=$1
  add_host "$r" api "10.200.$r.2"
  start "apiserver-r$r" "r$r-api" env NO_COLOR=1 "$FAKE_APISERVER" \
    --manifests "$RUN/r$r/manifests" --watch-manifests \
    --listen "10.200.$r.2:$API_PORT" \
    --kubeconfig-out "$RUN/r$r/kubeconfig" --context "region$r"
}

# ---- crossdns -----------------------------------------------------------------------------
# crossdns_config REGION REPLICA: the replica's config. watch-all mode: every region's
# apiserver is watched. site mode: only its own; the others' zones come by zone transfer.
crossdns_config() {
  local r=$1 x=$2 mode=${MODE:?}
  echo "# crossdns in region$r (replica $x), $mode mode."
  cat <<EOF
dns:
  listen: ["10.200.$r.${XDNS_OCTET[$x]}:53"]
  ttl: 5
EOF
  if [ "$mode" = site ]; then
    # site mode: the other regions transfer this region's zone over DNS over TLS (RFC 9103).
    cat <<EOF
  tls_listen: ["10.200.$r.${XDNS_OCTET[$x]}:853"]
  tls_cert: $RUN/r$r/xdns-$x-tls/tls.crt
  tls_key: $RUN/r$r/xdns-$x-tls/tls.key
EOF
  fi
  cat <<EOF
allow: ["10.200.0.0/16", "127.0.0.0/8"]
admin:
  listen: "127.0.0.1:9153"
  # After SIGTERM: keep answering 1 s with /readyz at 503 (stop waits up to 5 s).
  lameduck: 1s
EOF
  if [ "$mode" = site ]; then site_transfer "$r"; fi
  echo "# service_address: endpoints: pod IPs are routable between the regions, ClusterIPs are not."
  echo "clusters:"
  local s
  for s in "${REGIONS[@]}"; do
    cat <<EOF
  - name: region$s
    zone: cluster.region$s
EOF
    if [ "$mode" = site ] && [ "$s" != "$r" ]; then
      # site mode (design.md §7): only the own region's apiserver is watched; the other
      # regions' zones come from their crossdns replicas by zone transfer (NOTIFY + IXFR,
      # TSIG-signed, over TLS), so only the TSIG key and a CA cross regions, not apiserver
      # credentials.
      cat <<EOF
    primary:
      servers: ["tls://10.200.$s.${XDNS_OCTET[a]}:853#xdns.region$s", "tls://10.200.$s.${XDNS_OCTET[b]}:853#xdns.region$s"]
      key: sites
      poll: ${POLL_S}s
      tls_ca: $TLS/ca.crt
EOF
    else
      echo "    kubeconfig: $RUN/r$s/kubeconfig"
    fi
    echo "    service_address: endpoints"
  done
  cat <<EOF
clusterset:
  zone: clusterset.local
  local: region$r
  policy: local-first
  stale_after: ${STALE_AFTER_S}s
  all_down: servfail
EOF
}

# site mode: the TSIG key and the transfers this replica serves as its zone's primary, with a
# NOTIFY to every other region's replicas on each change.
site_transfer() {
  local r=$1 s y notify=""
  for s in "${REGIONS[@]}"; do
    [ "$s" = "$r" ] && continue
    for y in a b; do notify+="\"10.200.$s.${XDNS_OCTET[$y]}:53\", "; done
  done
  cat <<EOF
tsig_keys:
  - name: sites
    algorithm: hmac-sha256
    secret_file: $RUN/tsig-sites.key
transfer:
  allow: ["10.200.0.0/16"]
  key: sites
  notify: [${notify%, }]
EOF
}

start_crossdns() {
  local r=$1 x=$2
  # Debug level for the watch: each published snapshot is logged with its time.
  start "crossdns-r$r-$x" "r$r-xdns-$x" env NO_COLOR=1 CROSSDNS_LOG=info,crossdns::watch=debug \
    "$CROSSDNS" serve --config "$RUN/r$r/crossdns-$x.yaml"
}

# The config `generate join|sans` run with: deploy-time tools an operator runs from a
# workstation that holds every region's kubeconfig. In site mode the replicas' own configs follow
# the other regions by zone transfer, which carries no StatefulSets (crossdns refuses to
# generate from them), so the operator's config watches every apiserver.
generate_config() {
  if [ "$MODE" = site ]; then
    MODE=watch-all crossdns_config 1 a |
      sed "1s/.*/# The operator's config for generate join|sans: every region's kubeconfig./" \
        >"$RUN/operator.yaml"
    echo "$RUN/operator.yaml"
  else
    echo "$RUN/r1/crossdns-a.yaml"
  fi
}

crossdns_ready() { nsx "r$1-xdns-$2" curl -sf -o /dev/null "http://127.0.0.1:9153/readyz"; }

start_control_planes() {
  local r x
  # The TSIG secret the regions share in site mode (base64, as tsig-keygen prints it), and the
  # CA that signs each replica's DNS-over-TLS certificate (the etcd members' CA too).
  openssl rand -base64 32 >"$RUN/tsig-sites.key"
  make_ca
  for r in "${REGIONS[@]}"; do
    write_service_and_statefulset "$r"
    write_endpointslice "$r"
    start_apiserver "$r"
  done
  for r in "${REGIONS[@]}"; do
    wait_until 30 "apiserver of region$r" test -s "$RUN/r$r/kubeconfig" ||
      fail apiservers "region$r's apiserver did not start (see $LOGS/apiserver-r$r.log)"
  done
  pass apiservers "three test apiservers serving list/watch over TLS at 10.200.{1,2,3}.2:$API_PORT"
  for r in "${REGIONS[@]}"; do
    for x in a b; do
      add_host "$r" "xdns-$x" "10.200.$r.${XDNS_OCTET[$x]}"
      # Both replicas of a region show one name to the others: xdns.region<r>.
      issue_cert "$RUN/r$r/xdns-$x-tls" "xdns-$x.region$r" serverAuth "DNS:xdns.region$r"
      crossdns_config "$r" "$x" >"$RUN/r$r/crossdns-$x.yaml"
      if ! "$CROSSDNS" check --config "$RUN/r$r/crossdns-$x.yaml" >"$LOGS/check-r$r-$x.log" 2>&1; then
        fail crossdns-config "crossdns check refused $RUN/r$r/crossdns-$x.yaml: $(tail -1 "$LOGS/check-r$r-$x.log")"
      fi
      start_crossdns "$r" "$x"
    done
  done
  for r in "${REGIONS[@]}"; do
    for x in a b; do
      wait_until 60 "crossdns region$r/$x ready" crossdns_ready "$r" "$x" ||
        fail crossdns-ready "crossdns region$r/$x never became ready (see $LOGS/crossdns-r$r-$x.log)"
    done
  done
  if [ "$MODE" = site ]; then
    pass crossdns-ready "six crossdns replicas (two per region), each watching its own region's apiserver and synced with the other regions' zones by transfer over TLS"
  else
    pass crossdns-ready "six crossdns replicas (two per region) synced with all three apiservers"
  fi
}

# ---- kube-dns (dnsmasq) -------------------------------------------------------------------
# The JSON inside the ConfigMap's data.stubDomains block scalar.
stub_domains_json() {
  awk '/^  stubDomains: \|/ {inside = 1; next}
       inside && /^    / {sub(/^    /, ""); print; next}
       inside {exit}'
}

# Prints dnsmasq's --server flags for region r: the stubDomains of `generate kube-dns` with both
# crossdns replicas as addresses (kube-dns takes a list of servers per domain), then the flags the
# kube-dns Deployment itself passes for the cluster's own zone and reverse zones, which
# kube-dns's kubedns container answers and crossdns stands in for here.
dnsmasq_servers() {
  local r=$1 out json zones want s
  out="$RUN/r$r/kube-dns.yaml"
  "$CROSSDNS" generate kube-dns --config "$RUN/r$r/crossdns-a.yaml" --cluster "region$r" \
    --address "10.200.$r.${XDNS_OCTET[a]}" --address "10.200.$r.${XDNS_OCTET[b]}" \
    >"$out" 2>"$LOGS/generate-kube-dns-r$r.log" ||
    fail kube-dns-config "generate kube-dns failed: $(tail -1 "$LOGS/generate-kube-dns-r$r.log")"
  json=$(stub_domains_json <"$out")
  zones=$(jq -r 'keys_unsorted | join(" ")' <<<"$json") ||
    fail kube-dns-config "stubDomains in $out is not JSON: $json"
  want=""
  for s in "${REGIONS[@]}"; do [ "$s" = "$r" ] || want+="cluster.region$s "; done
  want+="clusterset.local"
  [ "$zones" = "$want" ] ||
    fail kube-dns-config "region$r stubDomains zones are '$zones', expected '$want'"
  [ "$(jq '[.[] | length] | min' <<<"$json")" = 2 ] ||
    fail kube-dns-config "region$r stubDomains do not list both replicas: $json"
  jq -r 'to_entries[] | .key as $zone | .value[] | "\($zone) \(.)"' <<<"$json" |
    while read -r zone target; do
      case $target in
        *:*) echo "--server=/$zone/${target%:*}#${target##*:}" ;;
        *) echo "--server=/$zone/$target" ;;
      esac
    done
  for x in a b; do
    echo "--server=/cluster.region$r/10.200.$r.${XDNS_OCTET[$x]}"
    echo "--server=/in-addr.arpa/10.200.$r.${XDNS_OCTET[$x]}"
  done
}

start_kube_dns() {
  local r=$1 flags
  add_host "$r" kdns "10.200.$r.$KDNS_OCTET"
  dnsmasq_servers "$r" >"$RUN/r$r/dnsmasq-servers"
  mapfile -t flags <"$RUN/r$r/dnsmasq-servers"
  [ "${#flags[@]}" -gt 0 ] || fail kube-dns-config "no dnsmasq servers for region$r"
  # As kube-dns's dnsmasq-nanny runs it (-k --cache-size=1000 --no-negcache --dns-loop-detect
  # --log-facility=-), plus what keeps the host's own files out.
  start "dnsmasq-r$r" "r$r-kdns" dnsmasq -k --cache-size=1000 --no-negcache --dns-loop-detect \
    --log-facility=- --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --listen-address="10.200.$r.$KDNS_OCTET" --bind-interfaces \
    --pid-file="$RUN/r$r/dnsmasq.pid" "${flags[@]}"
}

start_kube_dnses() {
  local r
  for r in "${REGIONS[@]}"; do start_kube_dns "$r"; done
  pass kube-dns-config "each region's stubDomains (generate kube-dns) name exactly the other regions' zones and clusterset.local"
  for r in "${REGIONS[@]}"; do
    local other=$((r % ${#REGIONS[@]} + 1))
    wait_until 20 "kube-dns of region$r answers" dig_ok "r$r-kdns" "10.200.$r.$KDNS_OCTET" \
      "dns-version.cluster.region$other" TXT ||
      fail kube-dns "region$r's dnsmasq does not answer another region's zone (see $LOGS/dnsmasq-r$r.log)"
  done
}

# dig_ok NETNS SERVER NAME TYPE: NOERROR with at least one answer.
dig_ok() {
  local out
  out=$(nsx "$1" dig +time=2 +tries=1 +noall +answer "@$2" "$3" "$4" 2>/dev/null) || return 1
  [ -n "$out" ]
}
