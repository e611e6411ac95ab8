//! HTTP routing: auth, fault gates, discovery, get, paginated list, watch
//! dispatch (streaming lists included), writes in the Kubernetes REST shape
//! (POST create, PUT replace, DELETE, merge PATCH), and test controls under
//! `/_fake/` (compact, drop-watches) for scripts driving the binary.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};
use crate::select::Filter;
use crate::state::{Counters, Fault, Shared};
use crate::store::WatchStart;
use crate::util::{parse_query, status};
use crate::{discovery, watch};

/// Response body type for every route (full documents and watch streams).
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

type Query = [(String, String)];

fn qget<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn qbool(q: &Query, key: &str) -> bool {
    matches!(qget(q, key), Some("true" | "1"))
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response<Body> {
    respond(code, "application/json", full(v.to_string()))
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status(code, reason, message))
}

fn not_found_path(path: &str) -> Response<Body> {
    let mut st = status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    st["details"] = json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]});
    json_response(404, &st)
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", shared.accepted_token());
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

/// Serve one request; `client_cert`: the connection presented a client
/// certificate signed by the server's CA.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    local: SocketAddr,
    client_cert: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let head = Request::from_parts(parts, ());
    let mut resp = route(&shared, local, client_cert, &head).await;
    if let Routed::Write(w) = resp {
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return Ok(status_response(
                    400,
                    "BadRequest",
                    &format!("reading the body: {e}"),
                ));
            }
        };
        resp = Routed::Done(write(&shared, &head, w, &bytes));
    }
    Ok(match resp {
        Routed::Done(r) => r,
        Routed::Write(_) => status_response(500, "InternalError", "unrouted write"),
    })
}

/// A write whose body is still to be read.
struct WriteTarget {
    res: &'static ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
}

enum Routed {
    Done(Response<Body>),
    Write(WriteTarget),
}

impl From<Response<Body>> for Routed {
    fn from(r: Response<Body>) -> Self {
        Routed::Done(r)
    }
}

async fn route(
    shared: &Arc<Shared>,
    local: SocketAddr,
    client_cert: bool,
    req: &Request<()>,
) -> Routed {
    Counters::bump(&shared.counters.requests);
    let path = req.uri().path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    let public = matches!(
        segs.as_slice(),
        ["version"] | ["healthz" | "livez" | "readyz"]
    );
    if !public && !client_cert && !authorized(shared, req.headers()) {
        Counters::bump(&shared.counters.auth_failures);
        return status_response(401, "Unauthorized", "Unauthorized").into();
    }
    shared.wait_not_stalled().await;
    match shared.fault() {
        Fault::ServerError => {
            return status_response(
                500,
                "InternalError",
                "Internal error occurred: injected fault",
            )
            .into();
        }
        Fault::TooManyRequests { retry_after_secs } if !public => {
            let mut resp = status_response(
                429,
                "TooManyRequests",
                "The server has received too many requests and has asked us to try again later",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
            return resp.into();
        }
        _ => {}
    }
    if segs
        .iter()
        .any(|seg| shared.hidden.iter().any(|h| h == seg))
    {
        return not_found_path(path).into();
    }
    let q = parse_query(req.uri().query());
    if req.method() != Method::GET {
        return match (req.method().clone(), segs.as_slice()) {
            (Method::POST, ["_fake", "compact"]) => {
                shared.store().compact();
                json_response(200, &json!({"compacted": true})).into()
            }
            (Method::POST, ["_fake", "drop-watches"]) => {
                shared.store().close_watches(true);
                json_response(200, &json!({"dropped": true})).into()
            }
            (
                Method::POST | Method::PUT | Method::DELETE | Method::PATCH,
                ["api", "v1", rest @ ..],
            ) => write_target("", "v1", rest, path),
            (
                Method::POST | Method::PUT | Method::DELETE | Method::PATCH,
                ["apis", g, v, rest @ ..],
            ) => write_target(g, v, rest, path),
            (m, _) => {
                let msg =
                    format!("the server does not allow this method on the requested resource: {m}");
                status_response(405, "MethodNotAllowed", &msg).into()
            }
        };
    }
    let doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["healthz" | "livez" | "readyz"] => return respond(200, "text/plain", full("ok")).into(),
        ["api"] => Some(discovery::core_versions(&local.to_string())),
        ["apis"] => Some(discovery::group_list()),
        ["apis", g] => discovery::api_group(g),
        ["api", "v1"] => discovery::resource_list("", "v1"),
        ["apis", g, v] => discovery::resource_list(g, v),
        ["api", "v1", rest @ ..] => return resource(shared, "", "v1", rest, &q, path).into(),
        ["apis", g, v, rest @ ..] => return resource(shared, g, v, rest, &q, path).into(),
        _ => None,
    };
    match doc {
        Some(doc) => json_response(200, &doc),
        None => not_found_path(path),
    }
    .into()
}

fn write_target(group: &str, version: &str, rest: &[&str], path: &str) -> Routed {
    match locate(group, version, rest) {
        Some((res, namespace, name)) => Routed::Write(WriteTarget {
            res,
            namespace,
            name,
        }),
        None => not_found_path(path).into(),
    }
}

fn not_found(res: &ResourceDef, name: &str) -> Response<Body> {
    let mut st = status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", res.plural),
    );
    st["details"] = json!({"name": name, "group": res.group, "kind": res.plural});
    json_response(404, &st)
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// POST (create), PUT (replace), DELETE, PATCH (merge) on one resource,
/// with the status codes and Status bodies the real apiserver gives.
fn write(shared: &Shared, req: &Request<()>, w: WriteTarget, body: &[u8]) -> Response<Body> {
    let WriteTarget {
        res,
        namespace,
        name,
    } = w;
    let ns = namespace.clone().unwrap_or_default();
    let method = req.method().clone();
    if method == Method::DELETE {
        let Some(name) = name else {
            return status_response(
                405,
                "MethodNotAllowed",
                "deleting a collection is not supported",
            );
        };
        let garbage = shared.garbage_watch_event();
        let mut store = shared.store();
        let Some(obj) = store.get(res, &ns, &name) else {
            return not_found(res, &name);
        };
        store.delete(res, &ns, &name, garbage);
        return json_response(200, &obj);
    }
    let mut obj: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return status_response(400, "BadRequest", "the body is not a JSON object"),
        Err(e) => {
            return status_response(400, "BadRequest", &format!("the body is not JSON: {e}"));
        }
    };
    if method == Method::PATCH {
        let Some(name) = &name else {
            return status_response(
                405,
                "MethodNotAllowed",
                "patching a collection is not supported",
            );
        };
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/merge-patch+json") {
            let msg = format!(
                "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got {content_type:?})"
            );
            return status_response(415, "UnsupportedMediaType", &msg);
        }
        let Some(mut current) = shared.store().get(res, &ns, name) else {
            return not_found(res, name);
        };
        merge_patch(&mut current, &obj);
        obj = current;
    }
    let api_version = res.api_version();
    if obj.get("apiVersion").is_none_or(Value::is_null) {
        obj["apiVersion"] = json!(api_version);
    }
    if obj.get("kind").is_none_or(Value::is_null) {
        obj["kind"] = json!(res.kind);
    }
    if obj["apiVersion"] != json!(api_version) || obj["kind"] != json!(res.kind) {
        let msg = format!(
            "the API version in the data ({}) / kind ({}) does not match the expected {api_version} {}",
            obj["apiVersion"], obj["kind"], res.kind
        );
        return status_response(400, "BadRequest", &msg);
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let body_name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if body_name.is_empty() {
        return status_response(
            422,
            "Invalid",
            &format!(
                "{} \"\" is invalid: metadata.name: Required value: name is required",
                res.kind
            ),
        );
    }
    if let Some(name) = &name
        && *name != body_name
    {
        return status_response(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    if method == Method::POST && name.is_some() {
        return status_response(405, "MethodNotAllowed", "POST goes to the collection");
    }
    if method != Method::POST && name.is_none() {
        return status_response(405, "MethodNotAllowed", "PUT and PATCH go to one object");
    }
    if res.namespaced {
        let Some(path_ns) = &namespace else {
            return status_response(
                404,
                "NotFound",
                "namespaced resources are written under namespaces/{ns}/",
            );
        };
        match obj["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != path_ns => {
                return status_response(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            _ => obj["metadata"]["namespace"] = json!(path_ns),
        }
    }
    let garbage = shared.garbage_watch_event();
    let mut store = shared.store();
    let existing = store.get(res, &ns, &body_name);
    match (&method, &existing) {
        (&Method::POST, Some(_)) => {
            let mut st = status(
                409,
                "AlreadyExists",
                &format!("{} \"{body_name}\" already exists", res.plural),
            );
            st["details"] = json!({"name": body_name, "group": res.group, "kind": res.plural});
            return json_response(409, &st);
        }
        (&Method::PUT, None) => return not_found(res, &body_name),
        (&Method::PUT, Some(cur)) => {
            let want = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if !want.is_empty() && Some(want) != cur["metadata"]["resourceVersion"].as_str() {
                let msg = format!(
                    "Operation cannot be fulfilled on {} \"{body_name}\": the object has been modified; please apply your changes to the latest version and try again",
                    res.plural
                );
                return status_response(409, "Conflict", &msg);
            }
        }
        _ => {}
    }
    if let Err(e) = store.apply(obj, garbage) {
        return status_response(400, "BadRequest", &format!("{e:#}"));
    }
    let stored = store.get(res, &ns, &body_name).unwrap_or(Value::Null);
    json_response(if method == Method::POST { 201 } else { 200 }, &stored)
}

/// Parsed `.../{plural}`, `.../{plural}/{name}`, `namespaces/{ns}/{plural}[/{name}]`.
fn locate(
    group: &str,
    version: &str,
    rest: &[&str],
) -> Option<(&'static ResourceDef, Option<String>, Option<String>)> {
    let find = |p: &str| resources::by_plural(group, version, p);
    match rest {
        [plural] => Some((find(plural)?, None, None)),
        [plural, name] => {
            let res = find(plural)?;
            (!res.namespaced).then(|| (res, None, Some(name.to_string())))
        }
        ["namespaces", ns, plural] => {
            let res = find(plural)?;
            res.namespaced.then(|| (res, Some(ns.to_string()), None))
        }
        ["namespaces", ns, plural, name] => {
            let res = find(plural)?;
            res.namespaced
                .then(|| (res, Some(ns.to_string()), Some(name.to_string())))
        }
        _ => None,
    }
}

fn resource(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    q: &Query,
    path: &str,
) -> Response<Body> {
    let Some((res, ns, name)) = locate(group, version, rest) else {
        return not_found_path(path);
    };
    let is_watch = qbool(q, "watch");
    if let (Some(name), false) = (&name, is_watch) {
        return match shared.store().get(res, ns.as_deref().unwrap_or(""), name) {
            Some(obj) => json_response(200, &obj),
            None => not_found(res, name),
        };
    }
    let filter = match Filter::new(
        res,
        ns,
        name,
        qget(q, "fieldSelector"),
        qget(q, "labelSelector"),
    ) {
        Ok(f) => f,
        Err(e) => return status_response(400, "BadRequest", &e.to_string()),
    };
    if is_watch {
        start_watch(shared, filter, q)
    } else {
        list(shared, &filter, q)
    }
}

fn list(shared: &Shared, filter: &Filter, q: &Query) -> Response<Body> {
    Counters::bump(&shared.counters.lists);
    let limit = match qget(q, "limit")
        .filter(|s| !s.is_empty())
        .map(str::parse::<usize>)
    {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return status_response(400, "BadRequest", "invalid limit"),
    };
    let page = match qget(q, "continue").filter(|s| !s.is_empty()) {
        Some(token) => match shared.store().continue_list(token, limit) {
            Some(p) => p,
            None => {
                let msg = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
                return status_response(410, "Expired", msg);
            }
        },
        None => shared.store().list(filter, limit),
    };
    if shared.garbage_list_page() {
        let body = format!(
            "{{\"kind\":\"{}List\",\"items\":[{{garbage",
            filter.res.kind
        );
        return respond(200, "application/json", full(body));
    }
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(token) = page.continue_token {
        meta["continue"] = json!(token);
        meta["remainingItemCount"] = json!(page.remaining);
    }
    let doc = json!({
        "kind": format!("{}List", filter.res.kind),
        "apiVersion": filter.res.api_version(),
        "metadata": meta,
        "items": page.items,
    });
    json_response(200, &doc)
}

/// 422 Invalid for watch options, as `ValidateListOptions` words it.
fn invalid_options(field: &str, why: &str) -> Response<Body> {
    let msg = format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {why}");
    status_response(422, "Invalid", &msg)
}

fn start_watch(shared: &Arc<Shared>, filter: Filter, q: &Query) -> Response<Body> {
    let initial = qget(q, "sendInitialEvents").is_some();
    let version_match = qget(q, "resourceVersionMatch").filter(|v| !v.is_empty());
    if initial && !shared.watch_list {
        return invalid_options(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        );
    }
    if initial && version_match != Some("NotOlderThan") {
        return invalid_options(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        );
    }
    if !initial && version_match.is_some() {
        return invalid_options(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        );
    }
    if qbool(q, "sendInitialEvents") && !qbool(q, "allowWatchBookmarks") {
        return invalid_options(
            "allowWatchBookmarks",
            "sendInitialEvents requires setting allowWatchBookmarks to true",
        );
    }
    let start = if qbool(q, "sendInitialEvents") {
        Counters::bump(&shared.counters.watch_lists);
        WatchStart::InitialEvents
    } else {
        match qget(q, "resourceVersion").unwrap_or("") {
            "" | "0" => WatchStart::Current,
            rv => match rv.parse::<u64>() {
                Ok(n) => WatchStart::From(n),
                Err(_) => {
                    let msg = format!("invalid resource version: {rv:?}");
                    return status_response(400, "BadRequest", &msg);
                }
            },
        }
    };
    let timeout = qget(q, "timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let bookmarks = qbool(q, "allowWatchBookmarks");
    Counters::bump(&shared.counters.watches_started);
    let res = filter.res;
    let garbage = shared.garbage();
    let started = shared.store().watch(filter, start, garbage);
    let body = watch::body(Arc::clone(shared), res, started, bookmarks, timeout);
    respond(200, "application/json", body)
}
