use serde_json::json;

use super::*;

#[test]
fn headless_service_keeps_named_ports_and_publish_not_ready() {
    let obj = convert(
        Kind::Service,
        json!({"metadata": {"name": "db", "namespace": "default", "annotations": {"crossdns.io/policy": "failover", "other": "x"}},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                        "ports": [{"name": "grpc", "port": 26257}]}}),
    )
    .expect("converts");
    let Some(Object::Service(svc)) = obj else {
        panic!("a service")
    };
    assert_eq!(svc.kind, ServiceKind::Headless);
    assert!(svc.publish_not_ready);
    assert_eq!(
        *svc.ports,
        [Port {
            name: "grpc".into(),
            protocol: Protocol::Tcp,
            port: 26257
        }]
    );
    assert_eq!(
        *svc.annotations,
        [("crossdns.io/policy".into(), "failover".into())]
    );
}

#[test]
fn dual_stack_cluster_ips_are_all_kept() {
    let Some(Object::Service(svc)) = convert(
        Kind::Service,
        json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]}}),
    )
    .expect("converts") else {
        panic!("a service")
    };
    assert_eq!(
        svc.kind,
        ServiceKind::ClusterIp(
            [
                "10.0.0.1".parse().expect("ip"),
                "fd00::1".parse().expect("ip")
            ]
            .into()
        )
    );
}

#[test]
fn garbage_fields_are_an_error_for_that_object() {
    let err = convert(
        Kind::Service,
        json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"ports": "lots"}}),
    )
    .expect_err("ports must be a list");
    assert!(
        err.to_string()
            .contains("Service does not match the Kubernetes schema"),
        "{err}"
    );
    let err = convert(
        Kind::Service,
        json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.999"}}),
    )
    .expect_err("bad IP");
    assert!(
        err.to_string()
            .contains("\"10.0.0.999\" is not an IP address"),
        "{err}"
    );
}

#[test]
fn endpoint_without_ready_condition_counts_as_ready() {
    let Some(Object::EndpointSlice(s)) = convert(
        Kind::EndpointSlice,
        json!({"metadata": {"name": "s", "namespace": "n", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.0.0.5"], "targetRef": {"kind": "Pod", "name": "web-1"}}]}),
    )
    .expect("converts") else {
        panic!("a slice")
    };
    assert!(s.endpoints[0].ready);
    assert_eq!(s.endpoints[0].name.as_deref(), Some("web-1"));
    assert!(s.endpoints[0].name_is_pod);
    assert_eq!(s.service, ObjKey::new("n", "web"));
}

#[test]
fn endpoint_addresses_beyond_the_first_are_kept_and_an_empty_endpoint_is_dropped() {
    let Some(Object::EndpointSlice(s)) = convert(
        Kind::EndpointSlice,
        json!({"metadata": {"name": "s", "namespace": "n", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.0.0.5", "10.0.0.6"], "hostname": "a"},
                             {"addresses": []}]}),
    )
    .expect("converts") else {
        panic!("a slice")
    };
    assert_eq!(s.endpoints.len(), 1);
    let ep = &s.endpoints[0];
    assert_eq!(
        s.addresses_of(0).map(|a| a.to_string()).collect::<Vec<_>>(),
        ["10.0.0.5", "10.0.0.6"]
    );
    assert_eq!(s.addresses_of(1).count(), 0);
    assert_eq!(s.all_addresses().count(), 2);
    assert_eq!((ep.label(false), ep.name_is_pod), (Some("a"), false));
}

#[test]
fn slice_without_service_label_is_ignored() {
    let out = convert(
        Kind::EndpointSlice,
        json!({"metadata": {"name": "s", "namespace": "n"}, "addressType": "IPv4", "endpoints": []}),
    )
    .expect("valid");
    assert!(out.is_none());
}
