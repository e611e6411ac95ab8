//! The store's change rules: relists, source resets, label suffixes.

use super::*;

fn spec() -> Arc<ClusterSpec> {
    Arc::new(ClusterSpec {
        name: "c".into(),
        zone: WireName::parse("cluster.c").expect("zone"),
        ttl: 5,
        namespaces: Vec::new(),
        service_address: crate::config::ServiceAddress::ClusterIp,
        pods: PodsMode::Disabled,
        endpoint_pod_names: false,
        clusterset: None,
        transfer: false,
    })
}

fn svc(name: &str) -> Object {
    Object::Service(Service {
        key: ObjKey::new("ns", name),
        kind: super::super::ServiceKind::ClusterIp(["10.0.0.1".parse().expect("ip")].into()),
        ports: Box::default(),
        publish_not_ready: false,
        lb_ingress: Box::default(),
        annotations: Box::default(),
    })
}

#[test]
fn a_source_reset_removes_only_what_no_source_still_lists() {
    let mut store = ClusterStore::new(spec());
    store.apply(Change::ResetSource(
        "a.yaml".into(),
        vec![svc("x"), svc("shared")],
    ));
    store.apply(Change::ResetSource(
        "b.yaml".into(),
        vec![svc("y"), svc("shared")],
    ));
    assert_eq!(store.count(Kind::Service), 3);
    // a.yaml loses x and shared; b.yaml still lists shared.
    store.apply(Change::ResetSource("a.yaml".into(), vec![]));
    let snap = store.publish(1);
    assert_eq!(store.count(Kind::Service), 2);
    assert!(snap.service(b"\x01x\x02ns").is_none());
    assert!(snap.service(b"\x06shared\x02ns").is_some());
    // A file that goes away entirely takes the rest.
    store.apply(Change::ResetSource("b.yaml".into(), vec![]));
    store.publish(2);
    assert_eq!(store.count(Kind::Service), 0);
}

#[test]
fn a_relist_deletes_only_at_its_end_and_keeps_objects_that_did_not_parse() {
    let mut store = ClusterStore::new(spec());
    for name in ["a", "b", "bad"] {
        store.apply(Change::Apply(svc(name)));
    }
    store.publish(1);
    store.apply(Change::ListStart(Kind::Service, None));
    store.apply(Change::Apply(svc("a")));
    store.apply(Change::Keep(Kind::Service, ObjKey::new("ns", "bad")));
    // Mid-list, nothing is gone yet: "b" may still come.
    let snap = store.publish(2);
    assert!(snap.service(b"\x01b\x02ns").is_some());
    store.apply(Change::ListEnd(Kind::Service, None));
    let snap = store.publish(3);
    assert!(snap.service(b"\x01a\x02ns").is_some());
    assert!(snap.service(b"\x01b\x02ns").is_none(), "not listed: gone");
    assert!(
        snap.service(b"\x03bad\x02ns").is_some(),
        "listed but unparseable: its last good version stays"
    );
}

#[test]
fn a_relist_of_unchanged_objects_changes_nothing() {
    let mut store = ClusterStore::new(spec());
    store.apply(Change::Apply(svc("a")));
    store.publish(1);
    store.apply(Change::ListStart(Kind::Service, None));
    store.apply(Change::Apply(svc("a")));
    store.apply(Change::ListEnd(Kind::Service, None));
    assert!(!store.is_dirty(), "an unchanged relist needs no publish");
}

#[test]
fn label_suffix_respects_label_boundaries() {
    let name = WireName::parse("web-0.web.ns.svc.z").expect("name");
    let svc = WireName::parse("web.ns.svc.z").expect("name");
    let other = WireName::parse("eb.ns.svc.z").expect("name");
    assert!(is_label_suffix(name.as_bytes(), svc.as_bytes()));
    assert!(is_label_suffix(svc.as_bytes(), svc.as_bytes()));
    assert!(!is_label_suffix(name.as_bytes(), other.as_bytes()));
}
