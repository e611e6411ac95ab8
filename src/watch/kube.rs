//! Live apiserver sources: one kube-runtime watcher per (kind, namespace
//! scope), and a liveness probe per cluster. Objects are read as
//! `DynamicObject`s so one malformed object is skipped (and logged once)
//! instead of failing its whole list; after any watch error (410 Expired
//! included) the watcher backs off and relists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::mpsc;

use super::convert::convert;
use super::{Scope, SourceEvent};
use crate::index::{Change, ClusterHandle, Kind, ObjKey, Object};

/// Server-side watch timeout: watches are re-opened (from the last
/// resourceVersion) at least this often, so a silently stalled apiserver is
/// noticed within `READ_TIMEOUT`.
const WATCH_TIMEOUT_SECS: u32 = 25;
const READ_TIMEOUT: Duration = Duration::from_secs(35);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Watch retries: exponential from 250 ms with jitter, capped at 5 s
/// (kube's default grows to 30 s, which would keep a recovered cluster
/// stale that long); reset by every successful list.
#[derive(Debug, Default)]
struct Exponential {
    attempt: u32,
}

impl Iterator for Exponential {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        const MIN_MS: u64 = 250;
        const MAX_MS: u64 = 5_000;
        let ms = MIN_MS.saturating_mul(1 << self.attempt.min(10)).min(MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        // Full jitter on the upper half, so clusters do not retry in step.
        Some(Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2)))
    }
}

impl Exponential {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Runs every watcher of one cluster until the task is aborted.
pub async fn run(
    cluster: String,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    scopes: Vec<Scope>,
    handle: Arc<ClusterHandle>,
    tx: mpsc::Sender<SourceEvent>,
) {
    let client = loop {
        match client(kubeconfig.as_ref(), context.as_deref()).await {
            Ok(c) => break c,
            Err(e) => {
                let _ = tx
                    .send(SourceEvent::Failing(format!(
                        "cannot build a client: {e:#}"
                    )))
                    .await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let mut tasks = vec![tokio::spawn(probe(client.clone(), Arc::clone(&handle)))];
    for scope in scopes {
        tasks.push(tokio::spawn(watch_scope(
            cluster.clone(),
            client.clone(),
            scope,
            Arc::clone(&handle),
            tx.clone(),
        )));
    }
    // Hold the watchers; aborting this task aborts them too.
    let _guard = super::ClusterTasks(tasks.into_iter().map(super::CancelOnDrop).collect());
    std::future::pending::<()>().await;
}

/// How often the apiserver is asked whether it is alive: a stalled
/// apiserver sends no watch error, so silence alone must be noticed.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

async fn probe(client: kube::Client, handle: Arc<ClusterHandle>) {
    let name = handle.spec.name.clone();
    loop {
        let sent = crate::index::unix_ms();
        match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                if handle.status.failing_since_ms().is_some() {
                    tracing::debug!(cluster = %name, "apiserver answers its probe");
                }
                handle.status.note_probe_ok();
            }
            // An HTTP error or an odd body still means the apiserver is up
            // (some test apiservers have no /version): only a failed or
            // timed-out connection counts against the cluster.
            Ok(Err(
                kube::Error::Api(_) | kube::Error::SerdeError(_) | kube::Error::FromUtf8(_),
            )) => {
                handle.status.note_probe_ok();
            }
            Ok(Err(e)) => {
                tracing::debug!(cluster = %name, error = %e, "apiserver probe failed");
                handle.status.note_probe_failure(sent);
            }
            Err(_) => {
                tracing::debug!(cluster = %name, "apiserver probe timed out");
                handle.status.note_probe_failure(sent);
            }
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = match kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    config.read_timeout = Some(READ_TIMEOUT);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    Ok(kube::Client::try_from(config)?)
}

fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::Service => ApiResource::erase::<Service>(&()),
        Kind::EndpointSlice => ApiResource::erase::<EndpointSlice>(&()),
        Kind::Pod => ApiResource::erase::<Pod>(&()),
        Kind::Namespace => ApiResource::erase::<Namespace>(&()),
        Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
    }
}

/// Rebuilds the full object JSON (`DynamicObject` splits metadata off).
fn to_value(obj: DynamicObject) -> Value {
    let mut value = obj.data;
    if let Value::Object(map) = &mut value
        && let Ok(meta) = serde_json::to_value(&obj.metadata)
    {
        map.insert("metadata".to_owned(), meta);
    }
    value
}

fn obj_key(kind: Kind, obj: &DynamicObject) -> ObjKey {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match kind {
        Kind::Namespace => ObjKey::new(String::new(), name),
        _ => ObjKey::new(obj.metadata.namespace.clone().unwrap_or_default(), name),
    }
}

/// Remembers which objects failed to convert, so each is logged once per
/// distinct error rather than on every relist.
#[derive(Default)]
struct BadObjects(HashMap<ObjKey, String>);

impl BadObjects {
    fn convert(
        &mut self,
        cluster: &str,
        kind: Kind,
        handle: &ClusterHandle,
        obj: DynamicObject,
    ) -> Option<Object> {
        let key = obj_key(kind, &obj);
        match convert(kind, to_value(obj)) {
            Ok(converted) => {
                self.0.remove(&key);
                converted
            }
            Err(e) => {
                let msg = e.to_string();
                if self.0.get(&key) != Some(&msg) {
                    tracing::warn!(cluster, kind = kind.as_str(), object = %key, error = %msg, "skipping object that does not parse");
                    handle
                        .status
                        .skipped_objects
                        .fetch_add(1, Ordering::Relaxed);
                    self.0.insert(key, msg);
                }
                None
            }
        }
    }
}

async fn watch_scope(
    cluster: String,
    client: kube::Client,
    scope: Scope,
    handle: Arc<ClusterHandle>,
    tx: mpsc::Sender<SourceEvent>,
) {
    let (kind, namespace) = scope.clone();
    let ar = api_resource(kind);
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECS);
    let mut bad = BadObjects::default();
    let mut backoff = Exponential::default();
    let optional = matches!(kind, Kind::Namespace | Kind::StatefulSet);
    let mut warned = false;
    // After any error the watcher starts over with a full list. kube's
    // watcher would resume from its resourceVersion instead, but a resumed
    // watch on a quiet cluster says nothing, so its recovery could not be
    // told from a dead one; a relist ends in InitDone, which marks the
    // source healthy again (and 410 Expired needs the relist anyway).
    loop {
        let mut stream = watcher::watcher(api.clone(), config.clone()).boxed();
        let mut initial: Vec<Object> = Vec::new();
        let error = loop {
            let Some(item) = stream.next().await else {
                break None;
            };
            let event = match item {
                Ok(Event::Init) => {
                    initial.clear();
                    continue;
                }
                Ok(Event::InitApply(obj)) => {
                    initial.extend(bad.convert(&cluster, kind, &handle, obj));
                    continue;
                }
                Ok(Event::InitDone) => {
                    backoff.reset();
                    warned = false;
                    let objects = std::mem::take(&mut initial);
                    tracing::debug!(
                        cluster,
                        kind = kind.as_str(),
                        count = objects.len(),
                        "listed"
                    );
                    let reset =
                        SourceEvent::Change(Change::Reset(kind, namespace.clone(), objects));
                    if tx.send(reset).await.is_err() {
                        return;
                    }
                    SourceEvent::Synced(scope.clone())
                }
                Ok(Event::Apply(obj)) => match bad.convert(&cluster, kind, &handle, obj) {
                    Some(o) => SourceEvent::Change(Change::Apply(o)),
                    None => continue,
                },
                Ok(Event::Delete(obj)) => {
                    SourceEvent::Change(Change::Delete(kind, obj_key(kind, &obj)))
                }
                Err(e) => break Some(e),
            };
            if tx.send(event).await.is_err() {
                return; // the writer is gone: the cluster is shutting down
            }
        };
        let why = error.map_or_else(|| "stream ended".to_owned(), |e| e.to_string());
        if optional {
            // Namespaces and StatefulSets add to DNS but do not gate it: an
            // apiserver (or RBAC) that refuses them must not make the
            // cluster look down.
            if !warned {
                tracing::warn!(cluster, kind = kind.as_str(), error = %why, "optional watch failing; retrying without marking the cluster down");
                warned = true;
            }
        } else if tx
            .send(SourceEvent::Failing(format!(
                "{} watch: {why}",
                kind.as_str()
            )))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(5))).await;
    }
}
