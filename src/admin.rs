//! Admin HTTP: `/healthz` (the process is up), `/readyz` (every cluster has
//! synced once; 503 with the laggards named until then) and `/metrics`.
//! Reads cluster status and metrics; never writes the index.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::index::{ClusterHandle, unix_ms};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
struct AdminState {
    clusters: Vec<Arc<ClusterHandle>>,
    metrics: Metrics,
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
    not_synced: Vec<String>,
    clusters: Vec<ClusterReady>,
}

pub fn router(clusters: Vec<Arc<ClusterHandle>>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { clusters, metrics })
}

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(listener: TcpListener, clusters: Vec<Arc<ClusterHandle>>, metrics: Metrics) {
    if let Err(e) = axum::serve(listener, router(clusters, metrics)).await {
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
    let ready = not_synced.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            ready,
            not_synced,
            clusters,
        }),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
