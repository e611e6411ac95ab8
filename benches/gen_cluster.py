#!/usr/bin/env python3
"""Generates one synthetic Kubernetes cluster for the crossdns benchmarks.

    gen_cluster.py --services N --endpoints-per-service M --out DIR

writes
  DIR/manifests/*.yaml           Services + EndpointSlices (multi-document
                                 files, flow style), 90% ClusterIP, 10%
                                 headless with hostnames; every service has
                                 one named port (http/TCP/80).
  DIR/knot/cluster.bench.zone    the same names/records crossdns answers for
                                 that data (A, SRV, SOA/NS at apex); plus
  DIR/knot/knot.conf             1 UDP worker, 1 TCP worker, 1 background worker.
  DIR/queries.txt                dnsperf input: 90% existing names, 10%
                                 search-path style misses, shuffled.
  DIR/expected.txt               counts of names/queries (for the scripts).
  DIR/crossdns.yaml              crossdns config serving the manifests.

Names: service i is svc-i in namespace ns-(i % namespaces); services with
i % 10 == 0 are headless, their endpoints are pod-0..pod-(M-1).
Deterministic for a given --seed.
"""

import argparse
import ipaddress
import json
import os
import random
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--endpoints-per-service", type=int, default=3)
    p.add_argument("--namespaces", type=int, default=100)
    p.add_argument("--headless-every", type=int, default=10, help="every Nth service is headless")
    p.add_argument("--out", required=True)
    p.add_argument("--zone", default="cluster.bench")
    p.add_argument("--cluster-name", default="bench")
    p.add_argument("--crossdns-port", type=int, default=15353)
    p.add_argument("--knot-port", type=int, default=15354)
    p.add_argument("--admin-port", type=int, default=0, help="0: no admin listener")
    p.add_argument("--ttl", type=int, default=5, help="must match crossdns dns.ttl")
    p.add_argument("--files", type=int, default=8, help="manifest files per kind")
    p.add_argument("--missing-fraction", type=float, default=0.10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--realistic", action="store_true",
                   help="objects as a real apiserver returns them: uid, resourceVersion, labels, "
                        "managedFields, kubectl's last-applied annotation, status, endpoint nodeName/zone")
    a = p.parse_args()

    n, m, zone = a.services, a.endpoints_per_service, a.zone.rstrip(".")
    if n < 1 or m < 1 or a.namespaces < 1:
        p.error("--services, --endpoints-per-service and --namespaces must be >= 1")
    if n * m >= 1 << 22:
        p.error("too many endpoints for the 10.128.0.0/10 address plan")
    out = os.path.abspath(a.out)
    man_dir = os.path.join(out, "manifests")
    knot_dir = os.path.join(out, "knot")
    os.makedirs(man_dir, exist_ok=True)
    os.makedirs(knot_dir, exist_ok=True)
    for f in os.listdir(man_dir):
        if f.endswith(".yaml"):
            os.remove(os.path.join(man_dir, f))

    vip_base = int(ipaddress.IPv4Address("10.96.0.0"))
    ep_base = int(ipaddress.IPv4Address("10.128.0.0"))

    def ns_of(i):
        return f"ns-{i % a.namespaces}"

    def headless(i):
        return i % a.headless_every == 0

    def ip(x):
        return str(ipaddress.IPv4Address(x))

    files = max(1, a.files)
    svc_files = [open(os.path.join(man_dir, f"services-{k:02d}.yaml"), "w") for k in range(files)]
    eps_files = [open(os.path.join(man_dir, f"endpointslices-{k:02d}.yaml"), "w") for k in range(files)]
    zone_lines = []
    existing = []  # (name, type)
    port = {"name": "http", "port": 80, "protocol": "TCP"}
    dumps = lambda o: json.dumps(o, separators=(",", ":"))

    def realistic_meta(meta, kind, i, manager, fields):
        """What the apiserver adds to every object it stores and returns."""
        meta["uid"] = f"{i:08x}-{(i * 2654435761 + len(kind)) & 0xffff:04x}-4000-8000-{i * 7919 % (1 << 48):012x}"
        meta["resourceVersion"] = str(1000 + i)
        meta["creationTimestamp"] = "2025-06-01T12:00:00Z"
        meta.setdefault("labels", {}).update({"app.kubernetes.io/name": meta["name"],
                                              "app.kubernetes.io/part-of": "bench",
                                              "team": f"team-{i % 17}"})
        meta["managedFields"] = [{"manager": manager, "operation": "Update", "apiVersion": "v1",
                                  "time": "2025-06-01T12:00:00Z", "fieldsType": "FieldsV1",
                                  "fieldsV1": fields}]
        return meta

    for i in range(n):
        ns, svc = ns_of(i), f"svc-{i}"
        fqdn = f"{svc}.{ns}.svc.{zone}."
        hl = headless(i)
        spec = {"ports": [port], "selector": {"app": svc}}
        if hl:
            spec["clusterIP"] = "None"
        else:
            spec["clusterIP"] = ip(vip_base + i)
            spec["clusterIPs"] = [ip(vip_base + i)]
            spec["type"] = "ClusterIP"
        svc_obj = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": svc, "namespace": ns}, "spec": spec}
        if a.realistic:
            applied = dumps(svc_obj)
            spec.update({"sessionAffinity": "None", "ipFamilies": ["IPv4"],
                         "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"})
            if not hl:
                spec["type"] = "ClusterIP"
            svc_obj["status"] = {"loadBalancer": {}}
            meta = realistic_meta(svc_obj["metadata"], "Service", i, "kubectl-client-side-apply", {
                "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                               "f:labels": {".": {}, "f:app.kubernetes.io/name": {}, "f:team": {}}},
                "f:spec": {"f:internalTrafficPolicy": {}, "f:ports": {".": {}, 'k:{"port":80,"protocol":"TCP"}': {
                    ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                           "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}}})
            meta["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": applied + "\n"}
        svc_files[i % files].write("---\n" + dumps(svc_obj) + "\n")
        endpoints = []
        for j in range(m):
            ep = {"addresses": [ip(ep_base + i * m + j)],
                  "conditions": {"ready": True, "serving": True, "terminating": False},
                  "targetRef": {"kind": "Pod", "name": f"{svc}-{j}", "namespace": ns}}
            if hl:
                ep["hostname"] = f"pod-{j}"
            if a.realistic:
                ep["nodeName"] = f"node-{(i * m + j) % 300}.bench.internal"
                ep["zone"] = f"zone-{(i + j) % 3}"
                ep["targetRef"]["uid"] = f"{i:08x}-{j:04x}-4000-8000-{(i * m + j) * 104729 % (1 << 48):012x}"
            endpoints.append(ep)
        slice_obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{svc}-abcde", "namespace": ns,
                                  "labels": {"kubernetes.io/service-name": svc}},
                     "addressType": "IPv4", "ports": [port], "endpoints": endpoints}
        if a.realistic:
            meta = realistic_meta(slice_obj["metadata"], "EndpointSlice", i, "kube-controller-manager", {
                "f:addressType": {}, "f:endpoints": {}, "f:metadata": {"f:generateName": {}, "f:labels": {
                    ".": {}, "f:endpointslice.kubernetes.io/managed-by": {}, "f:kubernetes.io/service-name": {}},
                    "f:ownerReferences": {".": {}, f'k:{{"uid":"{i:08x}"}}': {}}}, "f:ports": {}})
            meta["generateName"] = f"{svc}-"
            meta["generation"] = 1
            meta["labels"]["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
            meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": "2025-06-01T12:00:00Z"}
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                        "uid": f"{i:08x}", "controller": True, "blockOwnerDeletion": True}]
        eps_files[i % files].write("---\n" + dumps(slice_obj) + "\n")
        # What crossdns answers for this service (design.md §1).
        srv = f"_http._tcp.{svc}.{ns}.svc.{zone}."
        if hl:
            for j in range(m):
                zone_lines.append(f"{fqdn} A {ip(ep_base + i * m + j)}")
            for j in range(m):
                host = f"pod-{j}.{fqdn}"
                zone_lines.append(f"{host} A {ip(ep_base + i * m + j)}")
                zone_lines.append(f"{srv} SRV 0 {max(1, 100 // m)} 80 {host}")
                existing.append((host, "A"))
        else:
            zone_lines.append(f"{fqdn} A {ip(vip_base + i)}")
            zone_lines.append(f"{srv} SRV 0 100 80 {fqdn}")
        existing.append((fqdn, "A"))
        existing.append((srv, "SRV"))
    for f in svc_files + eps_files:
        f.close()

    # Knot zone + config.
    with open(os.path.join(knot_dir, f"{zone}.zone"), "w") as z:
        z.write(f"$ORIGIN {zone}.\n$TTL {a.ttl}\n")
        z.write(f"@ SOA ns.dns.{zone}. hostmaster.{zone}. 1 7200 1800 86400 {a.ttl}\n")
        z.write(f"@ NS ns.dns.{zone}.\n")
        z.write("\n".join(zone_lines) + "\n")
    os.makedirs(os.path.join(knot_dir, "run"), exist_ok=True)
    os.makedirs(os.path.join(knot_dir, "db"), exist_ok=True)
    with open(os.path.join(knot_dir, "knot.conf"), "w") as c:
        c.write(f"""server:
    rundir: "{knot_dir}/run"
    listen: 127.0.0.1@{a.knot_port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

database:
    storage: "{knot_dir}/db"

control:
    listen: "{knot_dir}/run/knot.sock"

log:
  - target: stderr
    any: warning

template:
  - id: default
    storage: "{knot_dir}"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole

zone:
  - domain: {zone}
    file: "{zone}.zone"
""")

    # Queries: every existing name once, plus misses making up ~10%.
    rnd = random.Random(a.seed)
    n_missing = max(1, round(len(existing) * a.missing_fraction / (1 - a.missing_fraction)))
    missing = []
    for k in range(n_missing):
        i = rnd.randrange(n)
        ns, svc = ns_of(i), f"svc-{i}"
        suffix = [f"{ns}.svc.{zone}", f"svc.{zone}", zone][k % 3]
        missing.append((f"{svc}.{ns}.svc.{zone}.{suffix}.", "A"))
    queries = [f"{nm} {t}" for nm, t in existing + missing]
    rnd.shuffle(queries)
    with open(os.path.join(out, "queries.txt"), "w") as q:
        q.write("\n".join(queries) + "\n")

    with open(os.path.join(out, "expected.txt"), "w") as e:
        e.write(f"services={n}\nendpoints={n * m}\nnames={len(existing)}\n"
                f"queries={len(queries)}\nexisting_queries={len(existing)}\nmissing_queries={len(missing)}\n"
                f"probe=svc-1.{ns_of(1)}.svc.{zone}.\nprobe_ip={ip(vip_base + 1) if n > 1 and not headless(1) else ''}\n")

    admin = f"admin:\n  listen: \"127.0.0.1:{a.admin_port}\"\n" if a.admin_port else ""
    with open(os.path.join(out, "crossdns.yaml"), "w") as y:
        y.write(f"""dns:
  listen: ["127.0.0.1:{a.crossdns_port}"]
  ttl: {a.ttl}
allow: ["127.0.0.0/8"]
{admin}clusters:
  - name: {a.cluster_name}
    zone: {zone}
    manifests: {man_dir}
""")
    print(f"{out}: {n} services, {n * m} endpoints, {len(existing)} names, "
          f"{len(queries)} queries ({len(missing)} missing)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
