//! The grammar as tables: every shape and the malformed ones, with no
//! server and no snapshot.

use std::net::IpAddr;

use super::*;
use crate::dnsname::{QName, WireName};

/// `name` relative to `zone`, as the engine hands it to the grammar.
fn rel(name: &str, zone: &str) -> (QName, usize) {
    let q = if name.is_empty() {
        QName::new()
    } else {
        QName::from_name(&WireName::parse(name).expect("name"))
    };
    let zone_labels = zone.split('.').count();
    let k = q
        .label_count()
        .checked_sub(zone_labels)
        .expect("name under zone");
    (q, k)
}

/// As `rel`, for labels a hostname cannot hold but a query can.
fn rel_raw(name: &str, zone: &str) -> (QName, usize) {
    let mut q = QName::new();
    for label in name.split('.') {
        assert!(q.push_label(label.as_bytes()), "label {label}");
    }
    let k = q.label_count() - zone.split('.').count();
    (q, k)
}

fn svc<'a>(key: &'a [u8], name: &'a [u8], ns: &'a [u8]) -> ServiceRef<'a> {
    ServiceRef {
        key,
        name,
        namespace: ns,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn cluster_names_parse_into_every_shape() {
    const Z: &str = "cluster.region1";
    let web = svc(b"\x03web\x04shop", b"web", b"shop");
    let rows: Vec<(&str, ClusterName<'_>)> = vec![
        ("cluster.region1", ClusterName::Apex),
        ("dns-version.cluster.region1", ClusterName::DnsVersion),
        ("dns.cluster.region1", ClusterName::Dns),
        ("ns.dns.cluster.region1", ClusterName::Ns),
        ("svc.cluster.region1", ClusterName::Svc),
        ("pod.cluster.region1", ClusterName::Pods),
        ("shop.svc.cluster.region1", ClusterName::Namespace(b"shop")),
        (
            "shop.pod.cluster.region1",
            ClusterName::PodNamespace(b"shop"),
        ),
        ("web.shop.svc.cluster.region1", ClusterName::Service(web)),
        (
            "web-0.web.shop.svc.cluster.region1",
            ClusterName::Host {
                host: b"web-0",
                service: web,
            },
        ),
        (
            "_tcp.web.shop.svc.cluster.region1",
            ClusterName::Proto {
                proto: b"_tcp",
                service: web,
            },
        ),
        (
            "_http._tcp.web.shop.svc.cluster.region1",
            ClusterName::Srv {
                key: b"\x05_http\x04_tcp",
                service: web,
            },
        ),
        (
            "10-0-0-1.shop.pod.cluster.region1",
            ClusterName::Pod {
                ip: ip("10.0.0.1"),
                namespace: b"shop",
            },
        ),
        (
            "2001-db8--0.shop.pod.cluster.region1",
            ClusterName::Pod {
                ip: ip("2001:db8::"),
                namespace: b"shop",
            },
        ),
        (
            "0--1.shop.pod.cluster.region1",
            ClusterName::Pod {
                ip: ip("::1"),
                namespace: b"shop",
            },
        ),
    ];
    for (name, want) in rows {
        let (q, k) = rel(name, Z);
        assert_eq!(parse_cluster(&q, k), want, "{name}");
    }
}

#[test]
fn malformed_cluster_names_are_nonexistent_under_their_namespace() {
    const Z: &str = "cluster.region1";
    let under = |ns: &'static [u8]| ClusterName::Nonexistent {
        namespace: Some(ns),
    };
    let top = ClusterName::Nonexistent { namespace: None };
    let rows: Vec<(&str, ClusterName<'_>)> = vec![
        ("random.cluster.region1", top),
        ("x.dns-version.cluster.region1", top),
        ("x.ns.dns.cluster.region1", top),
        ("a.dns.cluster.region1", top),
        ("not-an-ip.shop.pod.cluster.region1", under(b"shop")),
        ("a.10-0-0-1.shop.pod.cluster.region1", under(b"shop")),
        ("x._tcp.web.shop.svc.cluster.region1", under(b"shop")),
        ("_http.x.web.shop.svc.cluster.region1", under(b"shop")),
        ("a.b.c.web.shop.svc.cluster.region1", under(b"shop")),
        // An ndots:5 search-list miss.
        (
            "web.shop.svc.cluster.region1.svc.cluster.region1",
            under(b"region1"),
        ),
    ];
    for (name, want) in rows {
        let (q, k) = rel(name, Z);
        assert_eq!(parse_cluster(&q, k), want, "{name}");
    }
}

#[test]
fn label_arithmetic_never_underflows_for_short_or_inconsistent_lengths() {
    // A length longer than the name is clamped, not trusted.
    let q = QName::from_name(&WireName::parse("svc").expect("name"));
    assert_eq!(parse_cluster(&q, 9), ClusterName::Svc);
    assert_eq!(parse_clusterset(&q, 9), ClustersetName::Svc);
    let root = QName::new();
    assert_eq!(parse_cluster(&root, 0), ClusterName::Apex);
    assert_eq!(parse_cluster(&root, 3), ClusterName::Apex);
    assert_eq!(parse_clusterset(&root, 1), ClustersetName::Apex);
    assert_eq!(
        parse_reverse(Family::V4, &root, 4),
        ReverseName::Apex,
        "nothing below the apex"
    );
}

#[test]
fn clusterset_names_parse_into_every_shape() {
    const CS: &str = "clusterset.local";
    let db = svc(b"\x02db\x04shop", b"db", b"shop");
    let rows: Vec<(&str, ClustersetName<'_>)> = vec![
        ("clusterset.local", ClustersetName::Apex),
        ("dns-version.clusterset.local", ClustersetName::DnsVersion),
        ("ns.dns.clusterset.local", ClustersetName::Ns),
        ("dns.clusterset.local", ClustersetName::Dns),
        ("svc.clusterset.local", ClustersetName::Svc),
        (
            "shop.svc.clusterset.local",
            ClustersetName::Namespace(b"shop"),
        ),
        ("db.shop.svc.clusterset.local", ClustersetName::Service(db)),
        (
            "_tcp.db.shop.svc.clusterset.local",
            ClustersetName::Proto {
                proto: b"_tcp",
                service: db,
            },
        ),
        (
            "region1.db.shop.svc.clusterset.local",
            ClustersetName::Cluster {
                cluster: b"region1",
                service: db,
            },
        ),
        (
            "db-0.region1.db.shop.svc.clusterset.local",
            ClustersetName::ClusterHost {
                host: b"db-0",
                cluster: b"region1",
                service: db,
            },
        ),
        (
            "_grpc._tcp.db.shop.svc.clusterset.local",
            ClustersetName::Srv {
                key: b"\x05_grpc\x04_tcp",
                service: db,
            },
        ),
        ("pod.clusterset.local", ClustersetName::Nonexistent),
        ("x.pod.clusterset.local", ClustersetName::Nonexistent),
        (
            "_grpc.region1.db.shop.svc.clusterset.local",
            ClustersetName::Nonexistent,
        ),
        (
            "db-0._tcp.db.shop.svc.clusterset.local",
            ClustersetName::Nonexistent,
        ),
        (
            "a.db-0.region1.db.shop.svc.clusterset.local",
            ClustersetName::Nonexistent,
        ),
    ];
    for (name, want) in rows {
        let (q, k) = rel(name, CS);
        assert_eq!(parse_clusterset(&q, k), want, "{name}");
    }
}

#[test]
fn reverse_names_parse_addresses_and_the_names_above_them() {
    let v4 = |name: &str| {
        let (q, k) = rel(name, "in-addr.arpa");
        parse_reverse(Family::V4, &q, k)
    };
    assert_eq!(v4("in-addr.arpa"), ReverseName::Apex);
    assert_eq!(v4("ns.dns.in-addr.arpa"), ReverseName::Ns);
    assert_eq!(v4("10.in-addr.arpa"), ReverseName::Partial);
    assert_eq!(v4("96.10.in-addr.arpa"), ReverseName::Partial);
    assert_eq!(
        v4("10.0.96.10.in-addr.arpa"),
        ReverseName::Address(ip("10.96.0.10"))
    );
    assert_eq!(
        v4("255.0.199.9.in-addr.arpa"),
        ReverseName::Address(ip("9.199.0.255"))
    );
    for bad in [
        "256.in-addr.arpa",
        "01.10.in-addr.arpa",
        "x.in-addr.arpa",
        "1.2.3.4.5.in-addr.arpa",
        "-1.2.3.4.in-addr.arpa",
    ] {
        assert_eq!(v4(bad), ReverseName::Nonexistent, "{bad}");
    }
    // A sign, a space or a byte past ASCII is no octet.
    for bad in [
        "+1.2.3.4.in-addr.arpa",
        "1.2.3.+4.in-addr.arpa",
        " 1.2.3.4.in-addr.arpa",
        "1\u{e9}.2.3.4.in-addr.arpa",
    ] {
        let (q, k) = rel_raw(bad, "in-addr.arpa");
        assert_eq!(
            parse_reverse(Family::V4, &q, k),
            ReverseName::Nonexistent,
            "{bad}"
        );
    }
    let v6 = |name: &str| {
        let (q, k) = rel(name, "ip6.arpa");
        parse_reverse(Family::V6, &q, k)
    };
    let full = "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
    assert_eq!(v6(full), ReverseName::Address(ip("fd00::10")));
    assert_eq!(v6("d.f.ip6.arpa"), ReverseName::Partial);
    assert_eq!(v6("g.f.ip6.arpa"), ReverseName::Nonexistent);
    assert_eq!(v6("dd.f.ip6.arpa"), ReverseName::Nonexistent);
    assert_eq!(v6(&format!("0.{full}")), ReverseName::Nonexistent);
}

#[test]
fn built_names_parse_back_to_what_they_were_built_from() {
    let zone = WireName::parse("cluster.region1").expect("zone");
    let cs = WireName::parse("clusterset.local").expect("zone");
    let service = service_name(&zone, "shop", "web").expect("name");
    assert_eq!(service.to_string(), "web.shop.svc.cluster.region1");
    let key = service_key("shop", "web").expect("key");
    let q = QName::from_name(&service);
    match parse_cluster(&q, 3) {
        ClusterName::Service(s) => assert_eq!(s.key, &*key),
        other => panic!("{other:?}"),
    }
    let host = host_name(&service, &replica_host("web", 2)).expect("host");
    assert_eq!(host.to_string(), "web-2.web.shop.svc.cluster.region1");
    let srv = srv_key("http", "tcp").expect("key");
    assert_eq!(srv_key_proto(&srv), Some(&b"_tcp"[..]));
    let q = QName::from_name(
        &WireName::parse("_http._tcp.web.shop.svc.cluster.region1").expect("name"),
    );
    assert!(matches!(parse_cluster(&q, 5), ClusterName::Srv { key, .. } if key == &*srv));
    let cs_host = clusterset_host_name(&cs, "region1", "shop", "db", "db-0").expect("name");
    assert_eq!(
        cs_host.to_string(),
        "db-0.region1.db.shop.svc.clusterset.local"
    );
    assert_eq!(
        namespace_zone(&zone, "shop").expect("name").to_string(),
        "shop.svc.cluster.region1"
    );
    assert_eq!(
        ns_name(&zone).expect("ns").to_string(),
        "ns.dns.cluster.region1"
    );
    let pod = pod_name(&zone, "shop", ip("2001:db8::")).expect("pod");
    assert_eq!(pod.to_string(), "2001-db8--0.shop.pod.cluster.region1");
    let q = QName::from_name(&pod);
    assert_eq!(
        parse_cluster(&q, 3),
        ClusterName::Pod {
            ip: ip("2001:db8::"),
            namespace: b"shop"
        }
    );
}
