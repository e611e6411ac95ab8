//! Metrics: the `MetricSource` trait through which each module exposes the
//! counters it owns, the helpers those sources encode with, the query
//! counters of the listeners (which this module owns), and the two text
//! formats of `/metrics`. Knows no other module's internals: `app` registers
//! the sources; `admin` serves the text.

mod encode;
mod format;
mod queries;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub use encode::{
    AtomicHistogram, HistogramSnapshot, Labels, counter, gauge, seconds_gauge, seconds_histogram,
};
pub use format::Format;
pub use queries::{Answered, WorkerStats};

/// Something that owns metrics and encodes them at scrape time. Names are
/// given without the `crossdns_` prefix (the registry adds it) and, for
/// counters, without `_total` (the encoder adds it).
pub trait MetricSource: Send + Sync + std::fmt::Debug {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result;
}

#[derive(Debug)]
struct Inner {
    queries: queries::Queries,
    sources: Vec<Arc<dyn MetricSource>>,
}

/// The metrics of one running crossdns: the listeners' query counters, then
/// every registered source, in registration order.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Metrics {
    /// `zone_names` label the query counters (a query's zone is an index
    /// into it); `sources` are encoded after them.
    pub fn new(zone_names: Vec<String>, sources: Vec<Arc<dyn MetricSource>>) -> Self {
        Self(Arc::new(Inner {
            queries: queries::Queries::new(zone_names),
            sources,
        }))
    }

    /// Counters for a new listener thread or task.
    pub fn worker(&self) -> Arc<WorkerStats> {
        self.0.queries.worker()
    }

    /// The OpenMetrics 1.0 text of every metric.
    pub fn encode(&self) -> String {
        self.render(Format::OpenMetrics)
    }

    /// Every metric in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut registry = Registry::with_prefix("crossdns");
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        // Writing to a String cannot fail; a source that fails leaves its
        // family cut short, which the parsers would name.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding /metrics failed");
        }
        match format {
            Format::OpenMetrics => out,
            Format::Text004 => format::text_004(&out),
        }
    }
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.0.queries.encode(&mut enc)?;
        for source in &self.0.sources {
            source.encode(&mut enc)?;
        }
        Ok(())
    }
}
