//! Fault injection and the raw watch protocol: 500s, garbage JSON, stalls, pause/resume, 410 streams.

mod common;

use std::time::Duration;

use common::{client, eventually, next_matching, raw_get, server_with, service};
use fake_apiserver::{FakeApiServer, Fault, Options};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).expect("each watch line is JSON"))
        .collect()
}

/// A server holding the Service default/a, and a kube Api for Services on it.
async fn one_service() -> (FakeApiServer, Api<Service>) {
    let server = server_with(&[("default", "a", "10.0.0.1")]).await;
    let api = Api::all(client(&server).await);
    (server, api)
}

/// Clears the fault and asserts that a list works again and has the one
/// Service of `one_service`.
async fn assert_lists_again_once_cleared(server: &FakeApiServer, api: &Api<Service>) {
    server.set_fault(Fault::None);
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list after clearing the fault");
    let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["a"], "the one Service after clearing the fault");
}

#[tokio::test]
async fn server_error_fault_answers_500_to_lists_until_cleared() {
    let (server, api) = one_service().await;
    server.set_fault(Fault::ServerError);
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 500),
        other => panic!("expected a 500 Status, got {other:?}"),
    }
    let raw = raw_get(&server, "/api/v1/services", Some(server.token())).await;
    assert_eq!(raw.status, 500);
    assert_eq!(
        serde_json::from_str::<Value>(&raw.body).expect("Status body")["kind"],
        "Status"
    );
    assert_lists_again_once_cleared(&server, &api).await;
}

#[tokio::test]
async fn garbage_json_fault_makes_kube_list_fail_to_deserialize_until_cleared() {
    let (server, api) = one_service().await;
    server.set_fault(Fault::GarbageJson);
    match api.list(&ListParams::default()).await {
        Err(kube::Error::SerdeError(_)) => {}
        other => panic!("expected a deserialize error, got {other:?}"),
    }
    assert_lists_again_once_cleared(&server, &api).await;
}

#[tokio::test]
async fn stall_fault_holds_requests_until_cleared() {
    let server = FakeApiServer::start().await.expect("server starts");
    let api: Api<Service> = Api::all(client(&server).await);
    server.set_fault(Fault::Stall);
    let pending = tokio::spawn(async move {
        api.list(&ListParams::default())
            .await
            .map(|l| l.items.len())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "stalled request was not answered");
    server.set_fault(Fault::None);
    let n = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered once the fault is cleared")
        .expect("task")
        .expect("list ok");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn watcher_errors_while_paused_and_recovers_after_resume() {
    let server = server_with(&[("default", "before", "10.0.0.1")]).await;
    let api: Api<Service> = Api::all(client(&server).await);
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    next_matching(&mut stream, 10, "InitDone", |r| {
        matches!(r, Ok(Event::InitDone))
    })
    .await
    .expect("InitDone");

    server.pause().await;
    let refused = tokio::net::TcpStream::connect(server.addr()).await;
    assert!(refused.is_err(), "connections are refused while paused");
    let err = next_matching(&mut stream, 10, "an error while paused", |r| r.is_err()).await;
    assert!(err.is_err());

    server.resume().await.expect("resume");
    server
        .apply(service("default", "after", "10.0.0.2"))
        .expect("apply");
    let ev = next_matching(
        &mut stream,
        20,
        "'after' seen after resume",
        |r| matches!(r, Ok(Event::Apply(s) | Event::InitApply(s)) if s.name_any() == "after"),
    )
    .await;
    assert!(ev.is_ok());
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_a_410_error_event_in_a_200_stream() {
    let server = FakeApiServer::start().await.expect("server starts");
    let old = server
        .apply(service("default", "a", "10.0.0.1"))
        .expect("apply");
    server
        .apply(service("default", "b", "10.0.0.2"))
        .expect("apply");
    server.compact();
    let raw = raw_get(
        &server,
        &format!("/api/v1/services?watch=true&resourceVersion={old}"),
        Some(server.token()),
    )
    .await;
    assert_eq!(
        raw.status, 200,
        "the real apiserver reports 410 inside a 200 watch stream"
    );
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let events = lines(&raw.body);
    assert_eq!(events.len(), 1, "exactly one event: {}", raw.body);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["kind"], "Status");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    let msg = events[0]["object"]["message"].as_str().expect("message");
    assert!(
        msg.starts_with(&format!("too old resource version: {old} (")),
        "{msg}"
    );
}

#[tokio::test]
async fn history_beyond_the_limit_expires_like_compaction() {
    let opts = Options {
        history_limit: 3,
        ..Options::default()
    };
    let server = FakeApiServer::start_with(opts)
        .await
        .expect("server starts");
    let first = server
        .apply(service("default", "s0", "10.0.0.1"))
        .expect("apply");
    for i in 1..10 {
        server
            .apply(service("default", &format!("s{i}"), "10.0.0.1"))
            .expect("apply");
    }
    let token = Some(server.token());
    let raw = raw_get(
        &server,
        &format!("/api/v1/services?watch=1&resourceVersion={first}"),
        token,
    )
    .await;
    assert_eq!(lines(&raw.body)[0]["object"]["code"], 410);
    let recent = server.resource_version() - 2;
    let raw = raw_get(
        &server,
        &format!("/api/v1/services?watch=1&resourceVersion={recent}&timeoutSeconds=1"),
        token,
    )
    .await;
    let names: Vec<_> = lines(&raw.body)
        .iter()
        .map(|e| e["object"]["metadata"]["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("s8"), json!("s9")],
        "replay of the kept history"
    );
}

#[tokio::test]
async fn watch_replays_history_filters_by_namespace_and_selectors_and_ends_at_timeout() {
    let server = FakeApiServer::start().await.expect("server starts");
    let start = server.resource_version();
    common::apply_services(
        &server,
        &[
            ("default", "a", "10.0.0.1"),
            ("other", "b", "10.0.0.2"),
            ("default", "c", "10.0.0.3"),
        ],
    );
    assert!(server.delete("v1", "Service", Some("default"), "a"));
    let token = Some(server.token());
    let path = format!(
        "/api/v1/namespaces/default/services?watch=true&resourceVersion={start}&timeoutSeconds=1"
    );
    let events = lines(&raw_get(&server, &path, token).await.body);
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap_or(""),
                e["object"]["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(summary, ["ADDED a", "ADDED c", "DELETED a"]);
    assert_eq!(events[0]["object"]["kind"], "Service");
    assert_eq!(events[0]["object"]["apiVersion"], "v1");
    assert!(
        events[2]["object"]["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .parse::<u64>()
            .expect("numeric")
            == server.resource_version()
    );

    let path = "/api/v1/services?watch=1&labelSelector=app%3Db&timeoutSeconds=1";
    let events = lines(&raw_get(&server, path, token).await.body);
    assert_eq!(
        events.len(),
        1,
        "synthetic ADDED for current matching objects only"
    );
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "b");

    let path = "/api/v1/services?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1";
    let events = lines(&raw_get(&server, path, token).await.body);
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("initial-events-end bookmark");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn drop_watches_closes_open_streams_without_an_error_event() {
    let server = std::sync::Arc::new(server_with(&[("default", "a", "10.0.0.1")]).await);
    let s2 = std::sync::Arc::clone(&server);
    let watch =
        tokio::spawn(
            async move { raw_get(&s2, "/api/v1/services?watch=true", Some(s2.token())).await },
        );
    eventually(5, "watch registered", || {
        server.stats().watches_started == 1
    })
    .await;
    server.drop_watches();
    let raw = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("stream closed")
        .expect("task");
    assert!(
        raw.body.contains("ADDED"),
        "initial event was sent: {}",
        raw.body
    );
    assert!(!raw.body.contains("ERROR"), "no ERROR event: {}", raw.body);
}

#[tokio::test]
async fn yaml_lists_multi_documents_and_directories_are_applied() {
    let server = FakeApiServer::start().await.expect("server starts");
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a, namespace: default}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: default}\nspec: {serviceName: db}\n---\n";
    server.apply_yaml(yaml).expect("yaml applies");
    assert!(server.get("v1", "Service", Some("default"), "a").is_some());
    assert!(
        server
            .get("apps/v1", "StatefulSet", Some("default"), "db")
            .is_some()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(
        dir.path().join("sub/ns.yml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: n1}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("pod.json"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n1"}}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").expect("write");
    server.apply_dir(dir.path()).expect("dir applies");
    assert!(server.get("v1", "Namespace", None, "n1").is_some());
    assert!(server.get("v1", "Pod", Some("n1"), "p").is_some());
    assert!(
        server
            .apply(json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}))
            .is_err()
    );
}
