//! kube-rs (the client crossdns uses) against the fake: pagination, watchers, auth.

mod common;

use std::time::Duration;

use common::{client, next_matching, raw_get, service};
use fake_apiserver::{FakeApiServer, Options};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

#[tokio::test]
async fn kube_client_lists_1200_services_in_pages_of_500_via_continue_tokens() {
    let server = FakeApiServer::start().await.expect("server starts");
    for i in 0..1200 {
        let ns = if i % 2 == 0 { "default" } else { "other" };
        server
            .apply(service(ns, &format!("svc-{i:04}"), "10.0.0.1"))
            .expect("apply");
    }
    let api: Api<Service> = Api::all(client(&server).await);
    let mut names = Vec::new();
    let mut pages = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.expect("list page");
        pages += 1;
        assert!(page.items.len() <= 500, "page honours limit");
        names.extend(
            page.items
                .iter()
                .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 1200);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, names,
        "items are unique and sorted by namespace/name across pages"
    );
    assert_eq!(server.stats().lists, 3);
}

#[tokio::test]
async fn continue_tokens_page_through_the_snapshot_taken_by_the_first_page() {
    let server = FakeApiServer::start().await.expect("server starts");
    for i in 0..5 {
        server
            .apply(service("default", &format!("s{i}"), "10.0.0.1"))
            .expect("apply");
    }
    let api: Api<Service> = Api::namespaced(client(&server).await, "default");
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("first page");
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    server
        .apply(service("default", "s0a", "10.0.0.1"))
        .expect("apply between pages");
    let token = first.metadata.continue_.expect("continue token");
    let second = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("second page");
    let names: Vec<_> = second.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(
        names,
        ["s2", "s3", "s4"],
        "object added after page 1 is not in the snapshot"
    );
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );

    let err = api
        .list(&ListParams::default().continue_token("bogus:1"))
        .await
        .expect_err("unknown token");
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 Status, got {other:?}"),
    }
}

#[tokio::test]
async fn list_honours_field_and_label_selectors() {
    let server = common::server_with(&[
        ("a", "x", "10.0.0.1"),
        ("b", "x", "10.0.0.2"),
        ("b", "y", "10.0.0.3"),
    ])
    .await;
    let api: Api<Service> = Api::all(client(&server).await);
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=x,metadata.namespace!=a"))
        .await
        .expect("list");
    let got: Vec<_> = by_field
        .items
        .iter()
        .map(|s| s.namespace().unwrap_or_default())
        .collect();
    assert_eq!(got, ["b"]);
    let by_label = api
        .list(&ListParams::default().labels("app==y"))
        .await
        .expect("list");
    assert_eq!(by_label.items.len(), 1);
    assert_eq!(by_label.items[0].name_any(), "y");
}

#[tokio::test]
async fn service_watcher_sees_init_changes_relists_after_compaction_and_survives_bookmarks() {
    let opts = Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let server = FakeApiServer::start_with(opts)
        .await
        .expect("server starts");
    server
        .apply(service("default", "a", "10.0.0.1"))
        .expect("apply");
    let api: Api<Service> = Api::all(client(&server).await);
    let mut errors = Vec::new();
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut next_event =
        async |what: &str, pred: &dyn Fn(&Event<Service>) -> bool, errors: &mut Vec<String>| {
            let item = next_matching(
                &mut stream,
                15,
                what,
                |r: &Result<Event<Service>, watcher::Error>| match r {
                    Ok(ev) => pred(ev),
                    Err(_) => true,
                },
            )
            .await;
            match item {
                Ok(ev) => Some(ev),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            }
        };
    let is_name = |ev: &Event<Service>, want: &str| match ev {
        Event::Apply(s) | Event::InitApply(s) | Event::Delete(s) => s.name_any() == want,
        _ => false,
    };

    assert!(matches!(
        next_event("Init", &|e| matches!(e, Event::Init), &mut errors).await,
        Some(Event::Init)
    ));
    let ev = next_event(
        "InitApply(a)",
        &|e| matches!(e, Event::InitApply(_)),
        &mut errors,
    )
    .await;
    assert!(ev.as_ref().is_some_and(|e| is_name(e, "a")), "got {ev:?}");
    assert!(matches!(
        next_event("InitDone", &|e| matches!(e, Event::InitDone), &mut errors).await,
        Some(Event::InitDone)
    ));

    server
        .apply(service("default", "b", "10.0.0.2"))
        .expect("apply");
    let ev = next_event("Apply(b)", &|e| matches!(e, Event::Apply(_)), &mut errors).await;
    assert!(ev.as_ref().is_some_and(|e| is_name(e, "b")), "got {ev:?}");
    assert!(server.delete("v1", "Service", Some("default"), "a"));
    let ev = next_event("Delete(a)", &|e| matches!(e, Event::Delete(_)), &mut errors).await;
    assert!(ev.as_ref().is_some_and(|e| is_name(e, "a")), "got {ev:?}");

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        server.stats().bookmarks_sent > 0,
        "bookmarks were sent: {:?}",
        server.stats()
    );
    assert!(
        errors.is_empty(),
        "bookmarks did not make the watcher error: {errors:?}"
    );

    let lists_before = server.stats().lists;
    server.compact();
    server.drop_watches();
    // The open watch gets the 410 ERROR event (which kube surfaces as one Err), then relists.
    let mut saw_init_done = false;
    for _ in 0..10 {
        if let Some(Event::InitDone) = next_event(
            "second InitDone",
            &|e| matches!(e, Event::InitDone),
            &mut errors,
        )
        .await
        {
            saw_init_done = true;
            break;
        }
    }
    assert!(saw_init_done, "watcher relisted after compaction");
    assert!(server.stats().lists > lists_before, "a new list was served");
    assert!(
        errors
            .iter()
            .all(|e| e.contains("410") || e.contains("too old")),
        "only 410 errors: {errors:?}"
    );

    server
        .apply(service("default", "c", "10.0.0.3"))
        .expect("apply");
    let ev = next_event("Apply(c)", &|e| matches!(e, Event::Apply(_)), &mut errors).await;
    assert!(ev.as_ref().is_some_and(|e| is_name(e, "c")), "got {ev:?}");
}

#[tokio::test]
async fn endpointslice_and_namespace_watchers_see_changes_including_streaming_lists() {
    let server = FakeApiServer::start().await.expect("server starts");
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}))
        .expect("apply");
    let slice = |name: &str, ip: &str| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "ns1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        })
    };
    server.apply(slice("web-1", "10.1.0.1")).expect("apply");
    let client = client(&server).await;

    let mut slices = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .boxed();
    let ev = next_matching(&mut slices, 10, "InitApply(web-1)", |r| {
        matches!(r, Ok(Event::InitApply(_)))
    })
    .await;
    let Ok(Event::InitApply(s)) = ev else {
        panic!("unexpected {ev:?}")
    };
    assert_eq!(s.endpoints[0].addresses, ["10.1.0.1"]);
    next_matching(&mut slices, 10, "InitDone", |r| {
        matches!(r, Ok(Event::InitDone))
    })
    .await
    .expect("InitDone");
    server.apply(slice("web-1", "10.1.0.2")).expect("modify");
    let ev = next_matching(&mut slices, 10, "Apply(web-1)", |r| {
        matches!(r, Ok(Event::Apply(_)))
    })
    .await;
    let Ok(Event::Apply(s)) = ev else {
        panic!("unexpected {ev:?}")
    };
    assert_eq!(s.endpoints[0].addresses, ["10.1.0.2"]);

    let config = watcher::Config::default().streaming_lists();
    let mut namespaces = watcher::watcher(Api::<Namespace>::all(client), config).boxed();
    let ev = next_matching(&mut namespaces, 10, "InitApply(ns1)", |r| {
        matches!(r, Ok(Event::InitApply(_)))
    })
    .await;
    let Ok(Event::InitApply(ns)) = ev else {
        panic!("unexpected {ev:?}")
    };
    assert_eq!(ns.name_any(), "ns1");
    next_matching(&mut namespaces, 10, "InitDone", |r| {
        matches!(r, Ok(Event::InitDone))
    })
    .await
    .expect("InitDone");
    assert_eq!(
        server.stats().lists,
        1,
        "the streaming-list watcher did not list (only the slice watcher did)"
    );
    assert!(server.delete("v1", "Namespace", None, "ns1"));
    let ev = next_matching(&mut namespaces, 10, "Delete(ns1)", |r| {
        matches!(r, Ok(Event::Delete(_)))
    })
    .await;
    assert!(matches!(ev, Ok(Event::Delete(ns)) if ns.name_any() == "ns1"));
}

#[tokio::test]
async fn wrong_or_missing_token_gets_401_with_an_unauthorized_status() {
    let server = FakeApiServer::start().await.expect("server starts");
    let raw = raw_get(&server, "/api/v1/services", Some("wrong")).await;
    assert_eq!(raw.status, 401);
    let body: serde_json::Value = serde_json::from_str(&raw.body).expect("Status JSON");
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["code"], 401);
    assert_eq!(raw_get(&server, "/api/v1/services", None).await.status, 401);
    assert_eq!(
        raw_get(&server, "/api/v1/services", Some(server.token()))
            .await
            .status,
        200
    );
    assert_eq!(server.stats().auth_failures, 2);

    let kc = server
        .kubeconfig("fake")
        .replace(server.token(), "not-the-token");
    let kc = kube::config::Kubeconfig::from_yaml(&kc).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let api: Api<Service> = Api::all(kube::Client::try_from(config).expect("client"));
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn get_returns_the_object_or_a_404_status() {
    let server = common::server_with(&[("default", "x", "10.0.0.9")]).await;
    let api: Api<Service> = Api::namespaced(client(&server).await, "default");
    let svc = api.get("x").await.expect("get x");
    assert_eq!(
        svc.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("10.0.0.9")
    );
    assert!(svc.metadata.uid.is_some() && svc.metadata.creation_timestamp.is_some());
    match api.get("missing").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("expected 404, got {other:?}"),
    }
    assert!(api.get_opt("missing").await.expect("get_opt").is_none());
}

#[tokio::test]
async fn kube_streaming_list_watcher_ends_its_initial_events_at_the_bookmark() {
    let server =
        common::server_with(&[("default", "a", "10.0.0.1"), ("default", "b", "10.0.0.2")]).await;
    let api: Api<Service> = Api::all(client(&server).await);
    let mut stream = watcher::watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut listed = Vec::new();
    loop {
        match next_matching(&mut stream, 10, "the initial events", |_| true).await {
            Ok(Event::InitApply(s)) => listed.push(s.name_any()),
            Ok(Event::InitDone) => break,
            Ok(_) => {}
            Err(e) => panic!("streaming list failed: {e}"),
        }
    }
    assert_eq!(listed, ["a", "b"], "every object before initial-events-end");
    let stats = server.stats();
    assert_eq!(
        (stats.watch_lists, stats.lists),
        (1, 0),
        "one streaming list, no LIST: {stats:?}"
    );
    server
        .apply(service("default", "c", "10.0.0.3"))
        .expect("apply");
    let ev = next_matching(&mut stream, 10, "the live event after the list", |e| {
        matches!(e, Ok(Event::Apply(_)))
    })
    .await;
    assert!(matches!(ev, Ok(Event::Apply(s)) if s.name_any() == "c"));
}

#[tokio::test]
async fn a_server_without_streaming_lists_refuses_them_with_422_as_older_apiservers_do() {
    let server = FakeApiServer::start_with(Options {
        watch_list: false,
        ..Options::default()
    })
    .await
    .expect("server starts");
    let path = "/api/v1/services?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    let raw = raw_get(&server, path, Some(server.token())).await;
    assert_eq!(raw.status, 422, "{}", raw.body);
    assert!(raw.body.contains("WatchList feature gate"), "{}", raw.body);
    // A server with them still checks the options as the apiserver does.
    let on = FakeApiServer::start().await.expect("server starts");
    let raw = raw_get(
        &on,
        "/api/v1/services?watch=1&sendInitialEvents=true",
        Some(on.token()),
    )
    .await;
    assert_eq!(
        raw.status, 422,
        "sendInitialEvents needs resourceVersionMatch=NotOlderThan: {}",
        raw.body
    );
}

#[tokio::test]
async fn open_watches_count_each_watch_connection_until_its_client_goes_away() {
    let server = FakeApiServer::start().await.expect("server starts");
    server
        .apply(service("default", "web", "10.0.0.1"))
        .expect("apply");
    wait_open_watches(&server, &[]).await;
    let client = client(&server).await;
    // Each watcher is driven by its own task, as a controller drives it.
    let watch = |c: kube::Client| {
        let mut w = watcher::watcher(Api::<Service>::all(c), watcher::Config::default()).boxed();
        tokio::spawn(async move { while w.next().await.is_some() {} })
    };
    let first = watch(client.clone());
    let second = watch(client.clone());
    wait_open_watches(&server, &[("services", 2)]).await;
    first.abort();
    wait_open_watches(&server, &[("services", 1)]).await;
    second.abort();
    drop(client);
    wait_open_watches(&server, &[]).await;
}

/// Waits (10 s at most) until the server's open watches are exactly `want`.
async fn wait_open_watches(server: &FakeApiServer, want: &[(&str, u64)]) {
    let want: std::collections::BTreeMap<String, u64> =
        want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.open_watches() != want {
        assert!(
            std::time::Instant::now() < deadline,
            "open watches {:?}, not {want:?}",
            server.open_watches()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
