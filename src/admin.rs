//! Admin HTTP: `/healthz` (the process is up), `/readyz` (every cluster has
//! synced once; 503 with the laggards named until then, and during the
//! lame-duck period before shutdown) and `/metrics`, in
//! the format the scraper's `Accept` asks for (design.md §5: OpenMetrics 1.0
//! when asked, Prometheus text 0.0.4 otherwise). Reads cluster status and
//! metrics; never writes the index.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::index::{ClusterHandle, unix_ms};
use crate::metrics::{Format, Metrics};

#[derive(Debug, Clone)]
struct AdminState {
    clusters: Vec<Arc<ClusterHandle>>,
    metrics: Metrics,
    /// Shutting down: not ready, whatever the clusters say.
    draining: Arc<AtomicBool>,
}

#[derive(Debug, Serialize)]
struct ClusterReady {
    name: String,
    zone: String,
    synced: bool,
    /// Seconds the source has been failing, if it is.
    failing_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    /// In the lame-duck period before shutdown.
    shutting_down: bool,
    not_synced: Vec<String>,
    clusters: Vec<ClusterReady>,
}

pub fn router(
    clusters: Vec<Arc<ClusterHandle>>,
    metrics: Metrics,
    draining: Arc<AtomicBool>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState {
            clusters,
            metrics,
            draining,
        })
}

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    clusters: Vec<Arc<ClusterHandle>>,
    metrics: Metrics,
    draining: Arc<AtomicBool>,
) {
    if let Err(e) = axum::serve(listener, router(clusters, metrics, draining)).await {
        tracing::error!(error = %e, "admin server stopped");
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let now = unix_ms();
    let clusters: Vec<ClusterReady> = state
        .clusters
        .iter()
        .map(|c| ClusterReady {
            name: c.spec.name.clone(),
            zone: c.spec.zone.to_string(),
            synced: c.status.synced(),
            failing_seconds: c
                .status
                .failing_since_ms()
                .map(|t| now.saturating_sub(t) as f64 / 1e3),
        })
        .collect();
    let not_synced: Vec<String> = clusters
        .iter()
        .filter(|c| !c.synced)
        .map(|c| c.name.clone())
        .collect();
    let shutting_down = state.draining.load(Ordering::Relaxed);
    let ready = not_synced.is_empty() && !shutting_down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            ready,
            shutting_down,
            not_synced,
            clusters,
        }),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let format = negotiate(&accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.metrics.render(format),
    )
        .into_response()
}

/// The format for an `Accept` header (RFC 9110 §12.5.1): the acceptable
/// media range with the highest `q` picks; OpenMetrics wins a tie, and text
/// 0.0.4 is the answer when nothing we write is acceptable.
fn negotiate(accept: &str) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut q, mut version) = (1.0_f32, None);
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.parse().unwrap_or(0.0),
                "version" => version = Some(v.to_owned()),
                _ => {}
            }
        }
        let format = match (media.as_str(), version.as_deref()) {
            ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
            ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::Text004,
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((bq, bf)) => q > bq || (q == bq && format == Format::OpenMetrics && bf != format),
        };
        if q > 0.0 && better {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text004, |(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrapers_accept_header_picks_the_format() {
        let om = Format::OpenMetrics;
        let text = Format::Text004;
        for (accept, want) in [
            ("", text),
            ("*/*", text),
            ("application/json", text),
            ("text/plain", text),
            ("text/plain;version=0.0.4", text),
            ("application/openmetrics-text", om),
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                om,
            ),
            ("Application/OpenMetrics-Text;Version=\"1.0.0\"", om),
            // Prometheus 2.x.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                om,
            ),
            // Prometheus 3.x with protobuf first (native histograms on).
            (
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0.05",
                om,
            ),
            // Prometheus 2.x with scrape_protocols preferring text.
            (
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4",
                text,
            ),
            ("application/openmetrics-text;q=0.2, text/plain;q=0.9", text),
            ("application/openmetrics-text;q=0", text),
            ("application/openmetrics-text;version=2.0.0", text),
            ("application/openmetrics-text, */*", om),
            ("*/*;q=0.1, application/openmetrics-text;q=0.1", om),
            (
                "text/plain;version=1.0.0;escaping=allow-utf-8, application/openmetrics-text;q=0.5",
                om,
            ),
        ] {
            assert_eq!(negotiate(accept), want, "Accept: {accept}");
        }
    }
}
