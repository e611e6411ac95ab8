//! The two text formats of `/metrics`. prometheus-client writes OpenMetrics
//! 1.0; the Prometheus text format 0.0.4 is derived from it here, line by
//! line, by what the two formats' specifications say differs for the
//! families crossdns writes (counters, gauges, histograms, no timestamps,
//! no exemplars):
//! - a counter's `# HELP` and `# TYPE` name the family without `_total` in
//!   OpenMetrics and with it in 0.0.4, where they must name the samples;
//! - 0.0.4 has no `# UNIT` and no `# EOF`, and no `_created` samples;
//! - OpenMetrics' `unknown` type is 0.0.4's `untyped`.
//!
//! Sample lines are the same in both and pass through untouched.

use std::collections::HashSet;

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.
    OpenMetrics,
    /// The Prometheus text exposition format 0.0.4.
    Text004,
}

impl Format {
    /// The `Content-Type` its responses carry.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The 0.0.4 text of an OpenMetrics exposition.
pub(super) fn text_004(openmetrics: &str) -> String {
    let mut counters = HashSet::new();
    let mut with_created = HashSet::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            if kind == "counter" {
                counters.insert(name);
            }
            if matches!(kind, "counter" | "histogram" | "summary") {
                with_created.insert(name);
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, rest)) = metadata(line, "# HELP ") {
            out.push_str("# HELP ");
            push_name(&mut out, name, counters.contains(name));
            out.push(' ');
            out.push_str(rest);
        } else if let Some((name, kind)) = metadata(line, "# TYPE ") {
            out.push_str("# TYPE ");
            push_name(&mut out, name, counters.contains(name));
            out.push(' ');
            out.push_str(if kind == "unknown" { "untyped" } else { kind });
        } else if is_created(line, &with_created) {
            continue;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `(family name, rest)` of a `# HELP` or `# TYPE` line.
fn metadata<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix(prefix)?;
    Some(rest.split_once(' ').unwrap_or((rest, "")))
}

fn push_name(out: &mut String, name: &str, counter: bool) {
    out.push_str(name);
    if counter {
        out.push_str("_total");
    }
}

/// A `<family>_created` sample of a counter, histogram or summary.
fn is_created(line: &str, families: &HashSet<&str>) -> bool {
    let name = line.split(['{', ' ']).next().unwrap_or_default();
    name.strip_suffix("_created")
        .is_some_and(|family| families.contains(family))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_and_openmetrics_only_lines_go() {
        let om = "# HELP x_queries Queries.\n# TYPE x_queries counter\n\
                  x_queries_total{zone=\"a\"} 3\nx_queries_created{zone=\"a\"} 1.7e9\n\
                  # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.0\n\
                  # HELP x_rtt_seconds RTT.\n# TYPE x_rtt_seconds histogram\n# UNIT x_rtt_seconds seconds\n\
                  x_rtt_seconds_sum 0.5\nx_rtt_seconds_count 1\n\
                  x_rtt_seconds_bucket{le=\"1.0\"} 1\nx_rtt_seconds_bucket{le=\"+Inf\"} 1\n\
                  # HELP x_odd Odd.\n# TYPE x_odd unknown\nx_odd 2\n# EOF\n";
        let want = "# HELP x_queries_total Queries.\n# TYPE x_queries_total counter\n\
                    x_queries_total{zone=\"a\"} 3\n\
                    # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.0\n\
                    # HELP x_rtt_seconds RTT.\n# TYPE x_rtt_seconds histogram\n\
                    x_rtt_seconds_sum 0.5\nx_rtt_seconds_count 1\n\
                    x_rtt_seconds_bucket{le=\"1.0\"} 1\nx_rtt_seconds_bucket{le=\"+Inf\"} 1\n\
                    # HELP x_odd Odd.\n# TYPE x_odd untyped\nx_odd 2\n";
        assert_eq!(text_004(om), want);
    }

    #[test]
    fn a_gauge_whose_name_ends_in_created_is_kept() {
        let om = "# HELP x_created Made.\n# TYPE x_created gauge\nx_created 4.0\n# EOF\n";
        assert_eq!(
            text_004(om),
            "# HELP x_created Made.\n# TYPE x_created gauge\nx_created 4.0\n"
        );
    }
}
