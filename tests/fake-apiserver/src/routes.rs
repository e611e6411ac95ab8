//! HTTP routing: auth, fault gates, discovery, get, paginated list, and watch dispatch.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
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

fn authorized<B>(shared: &Shared, req: &Request<B>) -> bool {
    let expected = format!("Bearer {}", shared.token);
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

/// Serve one request.
pub(crate) async fn handle<B>(
    shared: Arc<Shared>,
    local: SocketAddr,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(route(&shared, local, &req).await)
}

async fn route<B>(shared: &Arc<Shared>, local: SocketAddr, req: &Request<B>) -> Response<Body> {
    Counters::bump(&shared.counters.requests);
    let path = req.uri().path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    let public = matches!(
        segs.as_slice(),
        ["version"] | ["healthz" | "livez" | "readyz"]
    );
    if !public && !authorized(shared, req) {
        Counters::bump(&shared.counters.auth_failures);
        return status_response(401, "Unauthorized", "Unauthorized");
    }
    shared.wait_not_stalled().await;
    if shared.fault() == Fault::ServerError {
        return status_response(
            500,
            "InternalError",
            "Internal error occurred: injected fault",
        );
    }
    if req.method() != Method::GET {
        let msg = format!(
            "the server does not allow this method on the requested resource: {}",
            req.method()
        );
        return status_response(405, "MethodNotAllowed", &msg);
    }
    if segs
        .iter()
        .any(|seg| shared.hidden.iter().any(|h| h == seg))
    {
        return not_found_path(path);
    }
    let q = parse_query(req.uri().query());
    let doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["healthz" | "livez" | "readyz"] => return respond(200, "text/plain", full("ok")),
        ["api"] => Some(discovery::core_versions(&local.to_string())),
        ["apis"] => Some(discovery::group_list()),
        ["apis", g] => discovery::api_group(g),
        ["api", "v1"] => discovery::resource_list("", "v1"),
        ["apis", g, v] => discovery::resource_list(g, v),
        ["api", "v1", rest @ ..] => return resource(shared, "", "v1", rest, &q, path),
        ["apis", g, v, rest @ ..] => return resource(shared, g, v, rest, &q, path),
        _ => None,
    };
    match doc {
        Some(doc) => json_response(200, &doc),
        None => not_found_path(path),
    }
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
            None => {
                let mut st = status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", res.plural),
                );
                st["details"] = json!({"name": name, "group": res.group, "kind": res.plural});
                json_response(404, &st)
            }
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
    if shared.garbage() {
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

fn start_watch(shared: &Arc<Shared>, filter: Filter, q: &Query) -> Response<Body> {
    let start = if qbool(q, "sendInitialEvents") {
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
