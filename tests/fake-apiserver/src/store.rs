//! Object storage, the global resourceVersion, watch history and live watch subscribers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::resources::{self, ResourceDef};
use crate::select::Filter;
use crate::util;

/// Events one watch may have queued before it is judged too slow and closed.
pub(crate) const WATCH_QUEUE: usize = 8192;
/// How long a continue token stays valid.
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
struct HistEvent {
    rv: u64,
    res: &'static ResourceDef,
    kind: EventType,
    obj: Arc<Value>,
    /// State before a MODIFIED, to turn selector transitions into ADDED/DELETED.
    prev: Option<Arc<Value>>,
}

/// How a watch stream ends once its queue is drained.
#[derive(Debug)]
pub(crate) enum CloseKind {
    /// Send this last line, then end cleanly.
    Error(Bytes),
    /// Break the connection without a terminating chunk.
    Abort,
}

/// Shared between a subscriber entry and its stream.
#[derive(Debug, Default)]
pub(crate) struct WatchCtl {
    close: Mutex<Option<CloseKind>>,
}

impl WatchCtl {
    pub fn take_close(&self) -> Option<CloseKind> {
        self.close
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
    fn set_close(&self, c: CloseKind) {
        *self.close.lock().unwrap_or_else(PoisonError::into_inner) = Some(c);
    }
}

#[derive(Debug)]
struct Subscriber {
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    ctl: Arc<WatchCtl>,
    last_rv: u64,
}

#[derive(Debug)]
struct Snapshot {
    created: Instant,
    rv: u64,
    items: Arc<Vec<Value>>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WatchStart {
    /// Synthetic ADDED for everything current (resourceVersion absent/0).
    Current,
    /// sendInitialEvents=true: ADDED for everything, then the initial-events-end bookmark.
    InitialEvents,
    /// Replay history after this resourceVersion.
    From(u64),
}

/// A started watch: lines to send first, then the live queue.
#[derive(Debug)]
pub(crate) struct WatchHandle {
    pub prefix: Vec<Bytes>,
    pub rx: mpsc::Receiver<Bytes>,
    pub ctl: Arc<WatchCtl>,
}

/// A page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub rv: u64,
    pub items: Vec<Value>,
    pub continue_token: Option<String>,
    pub remaining: usize,
}

#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<(&'static str, String, String), Arc<Value>>,
    rv: u64,
    history: VecDeque<HistEvent>,
    /// Every event with rv > history_start is still in `history`.
    history_start: u64,
    history_limit: usize,
    subs: Vec<Subscriber>,
    snapshots: HashMap<String, Snapshot>,
}

fn key(res: &'static ResourceDef, ns: &str, name: &str) -> (&'static str, String, String) {
    let ns = if res.namespaced { ns } else { "" };
    (res.plural, ns.to_string(), name.to_string())
}

/// `{"type":..,"object":..}` plus newline; unparseable when `garbage`.
fn event_line(kind: &str, obj: &Value, garbage: bool) -> Bytes {
    if garbage {
        return Bytes::from(format!(
            "{{\"type\":\"{kind}\",\"object\":{{\"kind\": <<not json>>\n"
        ));
    }
    let mut s = json!({"type": kind, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The 410 Expired watch event a real apiserver sends for a compacted resourceVersion.
pub(crate) fn expired_line(requested: u64, oldest: u64) -> Bytes {
    let msg = format!("too old resource version: {requested} ({oldest})");
    let mut s = json!({"type": "ERROR", "object": util::status(410, "Expired", &msg)}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A watch BOOKMARK line.
pub(crate) fn bookmark_line(res: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta});
    event_line("BOOKMARK", &obj, false)
}

/// What `filter` sees of `ev`, if anything.
fn visible(filter: &Filter, ev: &HistEvent) -> Option<EventType> {
    if filter.res != ev.res {
        return None;
    }
    let now = filter.matches(&ev.obj);
    match (ev.kind, &ev.prev) {
        (EventType::Modified, Some(prev)) => match (filter.matches(prev), now) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
        (k, _) => now.then_some(k),
    }
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_start: 1,
            history_limit,
            subs: Vec::new(),
            snapshots: HashMap::new(),
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Create or replace; returns the new resourceVersion.
    pub fn apply(&mut self, mut obj: Value, garbage: bool) -> anyhow::Result<u64> {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let res = resources::by_kind(&api_version, &kind).ok_or_else(|| {
            anyhow::anyhow!("unsupported apiVersion/kind {api_version:?}/{kind:?}")
        })?;
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow::anyhow!("{kind} has no metadata object"))?;
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{kind} has no metadata.name"))?
            .to_string();
        let ns = if res.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let ns = if ns.is_empty() { "default" } else { ns }.to_string();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let k = key(res, &ns, &name);
        let prev = self.objects.get(&k).cloned();
        for field in ["uid", "creationTimestamp"] {
            if meta.get(field).is_none_or(Value::is_null) {
                let v = prev
                    .as_ref()
                    .and_then(|p| p["metadata"].get(field).cloned())
                    .unwrap_or_else(|| {
                        Value::String(if field == "uid" {
                            util::random_uuid()
                        } else {
                            util::now_rfc3339()
                        })
                    });
                meta.insert(field.into(), v);
            }
        }
        self.rv += 1;
        let rv = self.rv;
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        let obj = Arc::new(obj);
        self.objects.insert(k, Arc::clone(&obj));
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(
            HistEvent {
                rv,
                res,
                kind,
                obj,
                prev,
            },
            garbage,
        );
        Ok(rv)
    }

    pub fn delete(
        &mut self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        garbage: bool,
    ) -> bool {
        let Some(old) = self.objects.remove(&key(res, ns, name)) else {
            return false;
        };
        self.rv += 1;
        let mut obj = (*old).clone();
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let ev = HistEvent {
            rv: self.rv,
            res,
            kind: EventType::Deleted,
            obj: Arc::new(obj),
            prev: None,
        };
        self.emit(ev, garbage);
        true
    }

    pub fn get(&self, res: &'static ResourceDef, ns: &str, name: &str) -> Option<Value> {
        self.objects.get(&key(res, ns, name)).map(|v| (**v).clone())
    }

    fn matching<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects
            .range((filter.res.plural, String::new(), String::new())..)
            .take_while(move |((p, _, _), _)| *p == filter.res.plural)
            .map(|(_, v)| v)
            .filter(move |v| filter.matches(v))
    }

    fn emit(&mut self, ev: HistEvent, garbage: bool) {
        self.subs.retain_mut(|s| {
            let Some(kind) = visible(&s.filter, &ev) else {
                return true;
            };
            match s.tx.try_send(event_line(kind.as_str(), &ev.obj, garbage)) {
                Ok(()) => {
                    s.last_rv = ev.rv;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("closing a watch whose consumer is too slow");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.history.push_back(ev);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.history_start = old.rv;
            }
        }
    }

    /// A page of matching objects (items without kind/apiVersion, sorted by namespace/name).
    pub fn list(&mut self, filter: &Filter, limit: usize) -> Page {
        let items: Vec<Value> = self
            .matching(filter)
            .map(|v| {
                let mut item = (**v).clone();
                if let Some(m) = item.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                item
            })
            .collect();
        let snap = Snapshot {
            created: Instant::now(),
            rv: self.rv,
            items: Arc::new(items),
        };
        self.page(snap, 0, limit)
    }

    /// The next page of an earlier list, or None if the token is unknown or expired.
    pub fn continue_list(&mut self, token: &str, limit: usize) -> Option<Page> {
        self.snapshots
            .retain(|_, s| s.created.elapsed() < SNAPSHOT_TTL);
        let (id, offset) = token.split_once(':')?;
        let offset: usize = offset.parse().ok()?;
        let snap = self.snapshots.get(id)?;
        let snap = Snapshot {
            created: snap.created,
            rv: snap.rv,
            items: Arc::clone(&snap.items),
        };
        Some(self.page(snap, offset, limit))
    }

    fn page(&mut self, snap: Snapshot, offset: usize, limit: usize) -> Page {
        let total = snap.items.len();
        let start = offset.min(total);
        let end = if limit == 0 {
            total
        } else {
            start.saturating_add(limit).min(total)
        };
        let items = snap.items[start..end].to_vec();
        let rv = snap.rv;
        let continue_token = (end < total).then(|| {
            let id = util::random_hex();
            self.snapshots.insert(id.clone(), snap);
            format!("{id}:{end}")
        });
        Page {
            rv,
            items,
            continue_token,
            remaining: total - end,
        }
    }

    /// Register a watch; Err carries the 410 line for a too-old resourceVersion.
    pub fn watch(
        &mut self,
        filter: Filter,
        start: WatchStart,
        garbage: bool,
    ) -> Result<WatchHandle, Bytes> {
        let mut prefix = Vec::new();
        let from = match start {
            WatchStart::Current | WatchStart::InitialEvents => {
                for obj in self.matching(&filter) {
                    prefix.push(event_line("ADDED", obj, garbage));
                }
                if matches!(start, WatchStart::InitialEvents) {
                    prefix.push(bookmark_line(filter.res, self.rv, true));
                }
                self.rv
            }
            WatchStart::From(rv) if rv < self.history_start => {
                return Err(expired_line(rv, self.history_start));
            }
            WatchStart::From(rv) => {
                for ev in self.history.iter().filter(|e| e.rv > rv) {
                    if let Some(kind) = visible(&filter, ev) {
                        prefix.push(event_line(kind.as_str(), &ev.obj, garbage));
                    }
                }
                rv.max(self.history_start)
            }
        };
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let ctl = Arc::new(WatchCtl::default());
        self.subs.push(Subscriber {
            filter,
            tx,
            ctl: Arc::clone(&ctl),
            last_rv: from,
        });
        Ok(WatchHandle { prefix, rx, ctl })
    }

    /// Forget history; open watches get a 410 ERROR and end. The resourceVersion is bumped
    /// so that every version handed out before the compaction is now too old.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.history.clear();
        self.history_start = self.rv;
        for s in self.subs.drain(..) {
            s.ctl.set_close(CloseKind::Error(expired_line(
                s.last_rv,
                self.history_start,
            )));
        }
    }

    /// Close every watch: `abort` breaks the connection, otherwise the stream ends cleanly.
    pub fn close_watches(&mut self, abort: bool) {
        for s in self.subs.drain(..) {
            if abort {
                s.ctl.set_close(CloseKind::Abort);
            }
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
