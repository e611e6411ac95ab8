//! One (kind, namespace) stream from a live apiserver, in the Kubernetes
//! list/watch protocol, read straight into the minimal index structs: each
//! list item or watch event is parsed from the response bytes by
//! `convert::convert_json`, so no full object (and no second copy of a
//! kind) is ever held.
//!
//! The initial list is a streaming list (`sendInitialEvents=true`, KEP-3157
//! WatchList) where the apiserver has it, ending at the bookmark annotated
//! `k8s.io/initial-events-end`; an apiserver that refuses it (422: older
//! than 1.27, or the feature gate off) gets a paginated list instead, then
//! a watch from the list's resourceVersion. Either way the objects go to
//! the writer one at a time between `ListStart` and `ListEnd` (`events`).

mod events;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::io::StreamReader;

use super::convert::{convert_json, key_of};
use super::kube::{ClientCell, Exponential, classify};
use super::{Failure, Scope, SourceEvent};
use crate::index::{Change, ClusterHandle, FailureCause, Kind, ObjKey};

/// Server-side watch timeout: watches are re-opened (from the last
/// resourceVersion) at least this often, so a silently stalled apiserver is
/// noticed within the client's read timeout (kube.rs `READ_TIMEOUT`).
const WATCH_TIMEOUT_SECS: u32 = 25;
/// The initial events of a streaming list may take longer than a watch
/// lasts (100,000s of objects); the server may take this long, and the
/// stream is ended by us `WATCH_TIMEOUT_SECS` after it opened once the
/// initial events are in.
const WATCH_LIST_TIMEOUT_SECS: u32 = 600;
/// Items per page of a paginated list (client-go's default).
const PAGE_SIZE: u32 = 500;
/// No line at all for this long (bookmarks included) is a stall.
const IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS as u64 + 10);
/// The longest Retry-After we honour; a larger one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How the initial list is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    WatchList,
    ListThenWatch,
}

/// Why one request ended other than by the server's timeout.
#[derive(Debug)]
enum Ended {
    /// The writer is gone: the cluster is shutting down.
    Closed,
    /// The apiserver does not do streaming lists.
    Unsupported,
    /// The resourceVersion is too old (410 Gone): list again.
    Expired,
    /// A failure; `relist` when events may have been lost.
    Failed {
        failure: Failure,
        relist: bool,
        retry_after: Option<Duration>,
    },
}

/// One stream of one cluster, until its task is aborted.
pub(super) struct ScopeWatch {
    pub cluster: String,
    pub clients: Arc<ClientCell>,
    pub scope: Scope,
    pub handle: Arc<ClusterHandle>,
    pub tx: mpsc::Sender<SourceEvent>,
}

/// A watch event line, its object left unparsed.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    type_: Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

/// What every object, bookmark and list carries: its resourceVersion (and
/// a bookmark's annotations).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct WithMeta {
    #[serde(default)]
    metadata: Meta,
}

/// One page of a list: items left unparsed, borrowed from the body.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    metadata: Meta,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
}

/// A `meta.k8s.io/v1` Status, as error responses and ERROR events carry.
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// The annotation on the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Remembers which objects failed to convert, so each is logged once per
/// distinct error rather than on every relist.
#[derive(Default)]
struct BadObjects(HashMap<ObjKey, String>);

impl ScopeWatch {
    fn kind(&self) -> Kind {
        self.scope.0
    }

    /// Namespaces and StatefulSets add to DNS but do not gate it: an
    /// apiserver (or RBAC) that refuses them must not make the cluster look
    /// down.
    fn optional(&self) -> bool {
        matches!(self.kind(), Kind::Namespace | Kind::StatefulSet)
    }

    pub(super) async fn run(self) {
        let mut strategy = Strategy::WatchList;
        let mut rv: Option<String> = None;
        let mut backoff = Exponential::default();
        let mut bad = BadObjects::default();
        let mut warned = false;
        loop {
            let ended = match (&rv, strategy) {
                (Some(_), _) => self.watch(&mut rv, false, &mut bad).await,
                (None, Strategy::WatchList) => self.watch(&mut rv, true, &mut bad).await,
                (None, Strategy::ListThenWatch) => match self.list(&mut bad).await {
                    Ok(listed) => {
                        rv = Some(listed);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            let (failure, relist, retry_after) = match ended {
                Ok(()) => {
                    backoff.reset();
                    warned = false;
                    continue;
                }
                Err(Ended::Closed) => return,
                Err(Ended::Unsupported) => {
                    tracing::info!(cluster = %self.cluster, kind = %self.kind().as_str(), "apiserver has no streaming lists; using paginated lists");
                    strategy = Strategy::ListThenWatch;
                    continue;
                }
                Err(Ended::Expired) => {
                    tracing::info!(cluster = %self.cluster, kind = %self.kind().as_str(), "resourceVersion expired (410 Gone); relisting");
                    rv = None;
                    continue;
                }
                Err(Ended::Failed {
                    failure,
                    relist,
                    retry_after,
                }) => (failure, relist, retry_after),
            };
            if relist {
                rv = None;
            }
            if self.optional() {
                self.handle.status.count_failure(failure.cause);
                if !warned {
                    tracing::warn!(cluster = %self.cluster, kind = %self.kind().as_str(), cause = %failure.cause.as_str(), error = %failure.message, "optional watch failing; retrying without marking the cluster down");
                    warned = true;
                }
            } else if self.tx.send(SourceEvent::Failing(failure)).await.is_err() {
                return;
            }
            let wait = retry_after.unwrap_or_else(|| backoff.next_delay());
            tokio::time::sleep(wait).await;
        }
    }

    fn path(&self) -> String {
        let (kind, ns) = &self.scope;
        let (prefix, plural) = match kind {
            Kind::Service => ("/api/v1", "services"),
            Kind::EndpointSlice => ("/apis/discovery.k8s.io/v1", "endpointslices"),
            Kind::Pod => ("/api/v1", "pods"),
            Kind::Namespace => ("/api/v1", "namespaces"),
            Kind::StatefulSet => ("/apis/apps/v1", "statefulsets"),
        };
        match ns {
            Some(ns) if *kind != Kind::Namespace => {
                format!("{prefix}/namespaces/{ns}/{plural}")
            }
            _ => format!("{prefix}/{plural}"),
        }
    }

    fn failure(&self, cause: FailureCause, message: String) -> Failure {
        Failure {
            scope: Some(self.scope.clone()),
            cause,
            message,
        }
    }

    fn failed(&self, cause: FailureCause, message: String, relist: bool) -> Ended {
        Ended::Failed {
            failure: self.failure(cause, message),
            relist,
            retry_after: None,
        }
    }

    async fn send(&self, ev: SourceEvent) -> Result<(), Ended> {
        self.tx.send(ev).await.map_err(|_| Ended::Closed)
    }

    async fn change(&self, change: Change) -> Result<(), Ended> {
        self.send(SourceEvent::Change(change)).await
    }

    /// GET `path?query`; a non-2xx answer becomes the `Ended` it means.
    async fn get(
        &self,
        query: &[(&str, &str)],
        watching: bool,
    ) -> Result<http::Response<kube::client::Body>, Ended> {
        let mut url = self.path();
        url.push('?');
        url.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
        let mut req = Request::get(url).header(header::ACCEPT, "application/json");
        if watching {
            // As kube-client does for watches: a gzipped stream of many
            // members does not decode.
            req = req.header(header::ACCEPT_ENCODING, "identity");
        }
        let req = req
            .body(kube::client::Body::empty())
            .map_err(|e| self.failed(FailureCause::Other, format!("request: {e}"), false))?;
        let (client, generation) = self.clients.get();
        let res = client.send(req).await.map_err(|e| {
            let (cause, message) = classify(&e);
            self.failed(cause, message, false)
        })?;
        if res.status().is_success() {
            return Ok(res);
        }
        let code = res.status();
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let status: Status = serde_json::from_slice(&body).unwrap_or_default();
        let message = format!(
            "HTTP {code} from {}: {} {}",
            self.path(),
            status.reason,
            status.message
        );
        let cause = match code {
            StatusCode::GONE => return Err(Ended::Expired),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST
                if query.iter().any(|(k, _)| *k == "sendInitialEvents") =>
            {
                return Err(Ended::Unsupported);
            }
            StatusCode::UNAUTHORIZED => {
                // The credentials may have been rotated under us (a token
                // file, an exec plugin's token): read them again.
                self.clients.renew(generation).await;
                FailureCause::Unauthorized
            }
            StatusCode::FORBIDDEN => FailureCause::Unauthorized,
            StatusCode::TOO_MANY_REQUESTS => FailureCause::Throttled,
            c if c.is_server_error() => FailureCause::ServerError,
            _ => FailureCause::Other,
        };
        Err(Ended::Failed {
            failure: self.failure(cause, message),
            relist: false,
            retry_after: retry_after.filter(|_| cause == FailureCause::Throttled),
        })
    }
}
