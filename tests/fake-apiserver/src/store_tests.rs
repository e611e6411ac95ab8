//! Unit tests for the store: slow-consumer closing, compaction, history replay.

use super::*;
use crate::resources::RESOURCES;

fn svc(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}})
}

fn all_services() -> Filter {
    Filter::new(&RESOURCES[1], None, None, None, None).expect("filter")
}

#[test]
fn a_watch_whose_queue_overflows_is_closed_without_blocking_the_writer() {
    let mut store = Store::new(100_000);
    let mut h = store
        .watch(all_services(), WatchStart::Current, false)
        .expect("watch");
    for i in 0..=WATCH_QUEUE {
        store
            .apply(svc(&format!("s{i}")), false)
            .expect("apply never blocks");
    }
    let mut received = 0;
    while h.rx.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(received, WATCH_QUEUE, "the queue held what fit");
    assert!(h.rx.is_closed(), "the slow watch was closed");
    assert!(
        h.ctl.take_close().is_none(),
        "closed cleanly (no ERROR, no abort)"
    );
}

#[test]
fn compaction_sends_open_watches_a_410_and_expires_every_earlier_version() {
    let mut store = Store::new(100);
    let rv = store.apply(svc("a"), false).expect("apply");
    let mut h = store
        .watch(all_services(), WatchStart::From(rv), false)
        .expect("watch");
    store.compact();
    assert!(h.rx.try_recv().is_err());
    match h.ctl.take_close() {
        Some(CloseKind::Error(line)) => {
            assert!(String::from_utf8_lossy(&line).contains("\"code\":410"))
        }
        other => panic!("expected a 410 close, got {other:?}"),
    }
    assert!(
        store
            .watch(all_services(), WatchStart::From(rv), false)
            .is_err(),
        "pre-compaction rv is expired"
    );
    let now = store.rv();
    assert!(
        store
            .watch(all_services(), WatchStart::From(now), false)
            .is_ok(),
        "a fresh list's rv is watchable"
    );
}

#[test]
fn a_modification_that_leaves_a_label_selector_is_seen_as_deleted() {
    let mut store = Store::new(100);
    let mut obj = svc("a");
    obj["metadata"]["labels"] = json!({"app": "web"});
    store.apply(obj.clone(), false).expect("apply");
    let filter = Filter::new(&RESOURCES[1], None, None, None, Some("app=web")).expect("filter");
    let mut h = store
        .watch(filter, WatchStart::Current, false)
        .expect("watch");
    obj["metadata"]["labels"] = json!({"app": "db"});
    store.apply(obj, false).expect("apply");
    let line = h.rx.try_recv().expect("an event");

    assert!(String::from_utf8_lossy(&line).contains("DELETED"));
}
