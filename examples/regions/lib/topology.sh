# shellcheck shell=bash
# The network: one router namespace per region with a bridge for the region's "pods", joined to
# a WAN namespace by one link per region. Inter-region packets are delayed in the WAN.
#
#   region r (1..3): 10.200.r.0/24, router "r<r>" (bridge br0 = 10.200.r.1, the pods' gateway)
#   WAN link of region r: 10.200.255.(4r+1)/30 (WAN side, device "r<r>") <-> 10.200.255.(4r+2)/30
#
# Every host of region r is a namespace "r<r>-<name>" with eth0 on the region's bridge.

wan_ip() { echo "10.200.255.$((4 * $1 + $2))"; }

make_region_router() {
  local r=$1
  ip netns add "${P}r$r"
  nsx "r$r" ip link set lo up
  nsx "r$r" sysctl -qw net.ipv4.ip_forward=1
  ip -n "${P}wan" link add "r$r" type veth peer name wan0 netns "${P}r$r"
  ip -n "${P}wan" addr add "$(wan_ip "$r" 1)/30" dev "r$r"
  ip -n "${P}r$r" addr add "$(wan_ip "$r" 2)/30" dev wan0
  ip -n "${P}wan" link set "r$r" up
  ip -n "${P}r$r" link set wan0 up
  ip -n "${P}r$r" link add br0 type bridge
  ip -n "${P}r$r" addr add "10.200.$r.1/24" dev br0
  ip -n "${P}r$r" link set br0 up
  ip -n "${P}r$r" route add 10.200.0.0/16 via "$(wan_ip "$r" 1)"
  ip -n "${P}wan" route add "10.200.$r.0/24" via "$(wan_ip "$r" 2)"
}

# add_host REGION NAME IP: a namespace on the region's bridge, default route via the router.
add_host() {
  local r=$1 name=$2 ip=$3 ns="${P}r$1-$2"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name "v-$name" netns "${P}r$r"
  ip -n "${P}r$r" link set "v-$name" master br0
  ip -n "${P}r$r" link set "v-$name" up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "10.200.$r.1"
}

del_host() {
  local ns="${P}r$1-$2"
  kill_netns_procs "$ns"
  ip netns delete "$ns"
}

# The WAN delay: tc netem where the kernel has it, else wan-delay.py on a TUN device that every
# packet entering the WAN from a region is routed through once (policy routing on the link it
# came in by). Either way each crossing between two regions costs DELAY_MS one way.
make_wan_delay() {
  local r
  if nsx wan tc qdisc add dev r1 root netem delay "${DELAY_MS}ms" 2>/dev/null; then
    for r in "${REGIONS[@]:1}"; do nsx wan tc qdisc add dev "r$r" root netem delay "${DELAY_MS}ms"; done
    # shellcheck disable=SC2034 # reported by run.sh
    WAN_DELAY_HOW="tc netem, ${DELAY_MS} ms on the WAN's egress to each region"
    return
  fi
  info "this kernel has no sch_netem: delaying in userspace (wan-delay.py on a TUN device)"
  # Niced up: a link is not slowed down by a busy machine, so the stand-in for one should be
  # slowed as little as possible.
  start wan-delay wan nice -n -10 "$PYTHON" "$HERE/wan-delay.py" wdly "$DELAY_MS"
  wait_until 10 "the WAN delay device" nsx wan ip link show wdly || fail wan "wan-delay.py did not create its device (see $LOGS/wan-delay.log)"
  nsx wan ip link set wdly up
  nsx wan ip route add default dev wdly table 100
  for r in "${REGIONS[@]}"; do nsx wan ip rule add iif "r$r" lookup 100 pref 100; done
  # Packets come back from wdly with sources that route out another device.
  nsx wan sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.wdly.rp_filter=0
  # shellcheck disable=SC2034 # reported by run.sh
  WAN_DELAY_HOW="userspace TUN delayer (kernel lacks sch_netem), ${DELAY_MS} ms per WAN crossing"
}

make_network() {
  ip netns add "${P}wan"
  nsx wan ip link set lo up
  nsx wan sysctl -qw net.ipv4.ip_forward=1
  local r
  for r in "${REGIONS[@]}"; do make_region_router "$r"; done
  make_wan_delay
}

wan_cut() { nsx wan ip link set "r$1" down; }

wan_restore() {
  local r=$1
  nsx wan ip link set "r$r" up
  # A link going down takes the routes through it along; put them back.
  nsx wan ip route replace "10.200.$r.0/24" via "$(wan_ip "$r" 2)"
  nsx "r$r" ip route replace 10.200.0.0/16 via "$(wan_ip "$r" 1)"
}
