#!/usr/bin/env python3
"""Ask DNS servers for a name over and over until each answers the expected addresses.

Used to time how fast a changed record reaches each resolver: one process, one query in flight
at a time, a few milliseconds apart, so the measurement costs little next to what it measures
(a `dig` process per query would cost more than crossdns's own propagation).

usage: follow.py TIMEOUT_S NAME EXPECTED_IPS SERVER...
  EXPECTED_IPS: comma-separated A records, in any order.
  prints one line per server, once it has answered EXPECTED_IPS or timed out:
    "<server> <sent ms of the first query answered right> <sent ms of the last query before it>"
    "<server> timeout <last answer>"
  (epoch milliseconds; the change reached the server between the two times, so a gap between
  them, when this process got no CPU, shows as a gap rather than as latency).
"""

import sys
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def answer(server: str, name: str) -> str:
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        reply = dns.query.udp(query, server, timeout=1.0)
    except (dns.exception.Timeout, OSError) as e:
        return f"error:{type(e).__name__}"
    if reply.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(reply.rcode())
    ips = sorted(rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset)
    return ",".join(ips) or "NODATA"


def main() -> None:
    timeout, name, expected, servers = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    want = ",".join(sorted(expected.split(",")))
    deadline = time.time() + timeout
    last = {s: "" for s in servers}
    previous = {s: 0.0 for s in servers}
    pending = list(servers)
    while pending and time.time() < deadline:
        for server in list(pending):
            started = time.time()
            got = answer(server, name)
            last[server] = got
            if got == want:
                print(f"{server} {int(started * 1000)} {int(previous[server] * 1000)}", flush=True)
                pending.remove(server)
            previous[server] = started
        time.sleep(0.005)
    for server in pending:
        print(f"{server} timeout {last[server]}", flush=True)


if __name__ == "__main__":
    main()
