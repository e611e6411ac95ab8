#!/usr/bin/env python3
"""Churn, sampling and RSS for benches/soak.sh (not run on its own).

    soak.py --work DIR --kubeconfig A --kubeconfig B --zone Z1 --zone Z2
            --dns PORT --pid PID --config FILE --duration S [--rate 100]
            [--services N --endpoints-per-service M] [--reload-every 60]

For --duration seconds:
  * churn: --rate watch events/s across the test apiservers, through their
    Kubernetes REST API (what `kubectl create/replace/delete` sends): one in
    three a Service created, one in three a Service deleted, one in three an
    EndpointSlice of a headless Service flapping (one endpoint ready <-> not);
  * wrong answers: every 20 ms a name touched by the churn is asked over UDP
    and its answer compared with the apiserver's state as it was at any
    moment of the last BOUND seconds (the propagation contract);
  * propagation: for every 5th Service created, the time from the write's
    response to the first answer that has it (polled every 2 ms);
  * a config reload every --reload-every seconds (the file rewritten with a
    new comment line, as a ConfigMap update arrives);
  * crossdns's VmRSS every second.
Writes DIR/soak.json.
"""

import argparse
import base64
import http.client
import ipaddress
import json
import os
import random
import socket
import ssl
import struct
import threading
import re
import time

BOUND = 1.0  # seconds: design.md's "changes visible within 1 s"
LIVE = 100  # churn Services kept per cluster before deletes begin


def read_kubeconfig(path):
    """server, token and CA of the one-cluster kubeconfig the test apiserver
    writes (plain `key: value` lines; no YAML library needed)."""
    found = {}
    for line in open(path):
        m = re.match(r"\s*-?\s*(server|token|certificate-authority-data):\s*['\"]?([^'\"\s]+)", line)
        if m:
            found.setdefault(m.group(1), m.group(2))
    return found


class Api:
    """One test apiserver, spoken to as kubectl does (bearer token, TLS)."""

    def __init__(self, kubeconfig):
        kc = read_kubeconfig(kubeconfig)
        self.token = kc["token"]
        host, port = kc["server"].removeprefix("https://").split(":")
        self.addr = (host, int(port))
        self.ctx = ssl.create_default_context(
            cadata=base64.b64decode(kc["certificate-authority-data"]).decode())
        self.conn = None
        self.lock = threading.Lock()

    def call(self, method, path, body=None):
        with self.lock:
            for attempt in range(3):
                try:
                    if self.conn is None:
                        self.conn = http.client.HTTPSConnection(*self.addr, context=self.ctx, timeout=10)
                    data = json.dumps(body).encode() if body is not None else None
                    self.conn.request(method, path, body=data, headers={
                        "Authorization": "Bearer " + self.token,
                        "Content-Type": "application/json", "Accept": "application/json"})
                    resp = self.conn.getresponse()
                    payload = resp.read()
                    return resp.status, payload
                except (OSError, http.client.HTTPException):
                    self.conn = None
                    if attempt == 2:
                        raise


def dns_query(port, name, timeout=1.0):
    """(rcode, sorted A addresses) of `name`, or (None, []) on timeout."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        while True:
            data, _ = s.recvfrom(4096)
            if struct.unpack(">H", data[:2])[0] == qid:
                break
    except socket.timeout:
        return None, []
    finally:
        s.close()
    flags, qd, an = struct.unpack(">HHH", data[2:8])
    rcode = flags & 0xF
    at = 12

    def skip_name(at):
        while True:
            n = data[at]
            if n == 0:
                return at + 1
            if n & 0xC0 == 0xC0:
                return at + 2
            at += n + 1

    for _ in range(qd):
        at = skip_name(at) + 4
    addrs = []
    for _ in range(an):
        at = skip_name(at)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[at:at + 10])
        at += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(str(ipaddress.IPv4Address(data[at:at + 4])))
        at += rdlen
    return rcode, sorted(addrs)


class State:
    """Per DNS name: the expected (rcode, addresses) and when each began."""

    def __init__(self):
        self.lock = threading.Lock()
        self.history = {}

    def set(self, name, expected, before):
        """`name` is `expected` from now on; `before` is what it was until
        now if this is the first change seen (the generated data)."""
        with self.lock:
            h = self.history.setdefault(name, [(float("-inf"), before)])
            h.append((time.monotonic(), expected))
            # Keep what an answer could still legitimately show.
            h = self.history[name]
            while len(h) > 2 and h[1][0] < time.monotonic() - 10:
                h.pop(0)

    def acceptable(self, name, got, asked_at):
        """True if `got` was the state at some moment in [asked_at - BOUND, now]."""
        with self.lock:
            h = list(self.history.get(name, []))
        ok = []
        for i, (t, exp) in enumerate(h):
            end = h[i + 1][0] if i + 1 < len(h) else float("inf")
            if end >= asked_at - BOUND:
                ok.append(exp)
        return got in ok, ok

    def names(self):
        with self.lock:
            return list(self.history)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--kubeconfig", action="append", required=True)
    p.add_argument("--zone", action="append", required=True)
    p.add_argument("--dns", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--services", type=int, default=2000)
    p.add_argument("--endpoints-per-service", type=int, default=10)
    p.add_argument("--namespaces", type=int, default=100)
    p.add_argument("--reload-every", type=float, default=60)
    a = p.parse_args()
    apis = [Api(k) for k in a.kubeconfig]
    zones = a.zone
    state = State()
    stop = threading.Event()
    stats = {"events": 0, "event_errors": 0, "creates": 0, "deletes": 0, "flaps": 0,
             "samples": 0, "wrong": 0, "wrong_examples": [], "sample_timeouts": 0,
             "propagation_ms": [], "propagation_missed": 0, "reloads": 0, "reload_times": [],
             "rss": []}
    ep_base = int(ipaddress.IPv4Address("10.128.0.0"))
    m = a.endpoints_per_service
    headless = [i for i in range(a.services) if i % 10 == 0]
    live = [dict() for _ in apis]  # churn Services per cluster: name -> ip
    flapped = [dict() for _ in apis]  # headless index -> ready of endpoint 0
    counter = [0]
    counter_lock = threading.Lock()
    vip_of = {}  # churn Service -> its ClusterIP

    def slice_of(i, ready0):
        ns, svc = f"ns-{i % a.namespaces}", f"svc-{i}"
        eps = []
        for j in range(m):
            eps.append({"addresses": [str(ipaddress.IPv4Address(ep_base + i * m + j))],
                        "conditions": {"ready": ready0 if j == 0 else True, "serving": True, "terminating": False},
                        "hostname": f"pod-{j}",
                        "targetRef": {"kind": "Pod", "name": f"{svc}-{j}", "namespace": ns}})
        return ns, svc, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"name": f"{svc}-abcde", "namespace": ns,
                                      "labels": {"kubernetes.io/service-name": svc}},
                         "addressType": "IPv4",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "endpoints": eps}

    def probe(name, vip, done):
        while True:
            rc, addrs = dns_query(a.dns, name, 0.5)
            now = time.monotonic()
            if rc == 0 and addrs == [vip]:
                stats["propagation_ms"].append((now - done) * 1000)
                return
            if now - done > 2.0:
                stats["propagation_missed"] += 1
                return
            time.sleep(0.002)

    def churn(c):
        """rate / len(apis) events/s against apiserver c."""
        api, zone = apis[c], zones[c]
        period = len(apis) / a.rate
        next_t = time.monotonic()
        k = 0
        while not stop.is_set():
            what = k % 3
            # Deletes take the oldest churn Service once a pool of LIVE has
            # built up, so each lives long enough to be asked for.
            if what == 1 and len(live[c]) < LIVE:
                what = 0
            elif what == 0 and len(live[c]) >= 2 * LIVE:
                what = 1
            try:
                if what == 0:  # create
                    with counter_lock:
                        counter[0] += 1
                        n = counter[0]
                    name = f"churn-{n}"
                    vip = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.200.0.0")) + n % 60000))
                    body = {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": name, "namespace": "soak"},
                            "spec": {"clusterIP": vip, "clusterIPs": [vip],
                                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
                    st, _ = api.call("POST", "/api/v1/namespaces/soak/services", body)
                    if st != 201:
                        raise RuntimeError(f"create {name}: HTTP {st}")
                    done = time.monotonic()
                    state.set(f"{name}.soak.svc.{zone}", (0, [vip]), (3, []))
                    live[c][name] = vip
                    vip_of[name] = vip
                    stats["creates"] += 1
                    if n % 5 == 0:
                        threading.Thread(target=probe, args=(f"{name}.soak.svc.{zone}", vip, done),
                                         daemon=True).start()
                elif what == 1:  # delete the oldest
                    name = next(iter(live[c]))
                    live[c].pop(name)
                    st, _ = api.call("DELETE", f"/api/v1/namespaces/soak/services/{name}")
                    if st != 200:
                        raise RuntimeError(f"delete {name}: HTTP {st}")
                    state.set(f"{name}.soak.svc.{zone}", (3, []), (0, [vip_of[name]]))
                    stats["deletes"] += 1
                else:  # flap endpoint 0 of a headless Service
                    i = random.choice(headless)
                    ready0 = not flapped[c].get(i, True)
                    ns, svc, body = slice_of(i, ready0)
                    st, _ = api.call("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{svc}-abcde", body)
                    if st != 200:
                        raise RuntimeError(f"flap {svc}: HTTP {st}")
                    flapped[c][i] = ready0
                    addrs = [str(ipaddress.IPv4Address(ep_base + i * m + j)) for j in range(m) if j or ready0]
                    every = [str(ipaddress.IPv4Address(ep_base + i * m + j)) for j in range(m)]
                    state.set(f"{svc}.{ns}.svc.{zone}", (0, sorted(addrs)), (0, sorted(every)))
                    stats["flaps"] += 1
                stats["events"] += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                stats["event_errors"] += 1
                if stats["event_errors"] < 5:
                    print(f"churn error: {e}", flush=True)
            k += 1
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_t = time.monotonic()  # fell behind: do not burst

    def sampler():
        while not stop.is_set():
            names = state.names()
            if names:
                name = random.choice(names)
                asked = time.monotonic()
                rc, addrs = dns_query(a.dns, name, 1.0)
                stats["samples"] += 1
                if rc is None:
                    stats["sample_timeouts"] += 1
                else:
                    ok, allowed = state.acceptable(name, (rc, addrs), asked)
                    if not ok:
                        stats["wrong"] += 1
                        if len(stats["wrong_examples"]) < 10:
                            stats["wrong_examples"].append({"name": name, "got": [rc, addrs], "allowed": allowed})
            time.sleep(0.02)

    def reloader():
        n = 0
        text = open(a.config).read()
        while not stop.wait(a.reload_every):
            n += 1
            with open(a.config + ".tmp", "w") as f:
                f.write(text + f"# soak reload {n}\n")
            os.replace(a.config + ".tmp", a.config)
            stats["reloads"] += 1
            stats["reload_times"].append(round(time.monotonic() - t0, 1))

    def rss():
        while not stop.wait(1.0):
            try:
                for line in open(f"/proc/{a.pid}/status"):
                    if line.startswith("VmRSS:"):
                        stats["rss"].append((round(time.monotonic() - t0, 1), int(line.split()[1])))
            except OSError:
                stats["rss"].append((round(time.monotonic() - t0, 1), -1))

    t0 = time.monotonic()
    threads = [threading.Thread(target=churn, args=(c,), daemon=True) for c in range(len(apis))]
    threads += [threading.Thread(target=f, daemon=True) for f in (sampler, reloader, rss)]
    for t in threads:
        t.start()
    time.sleep(a.duration)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    stats["elapsed_s"] = time.monotonic() - t0
    with open(os.path.join(a.work, "soak.json"), "w") as f:
        json.dump(stats, f)


if __name__ == "__main__":
    main()
