use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::*;
use crate::dnscode::{qtype, rcode};

fn answered(zone: Option<usize>, qtype: u16, rcode: u8) -> Answered {
    Answered {
        zone,
        qtype,
        rcode,
        truncated: false,
    }
}

/// The sample lines of `text` that start with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn duration_buckets_are_cumulated_once_and_inf_equals_the_count() {
    let m = Metrics::new(vec!["cluster.a".into()], vec![]);
    let (w1, w2) = (m.worker(), m.worker());
    let q = answered(Some(0), qtype::A, rcode::NOERROR);
    for _ in 0..3 {
        w1.record(q, Duration::from_micros(1));
    }
    for _ in 0..2 {
        w2.record(q, Duration::from_micros(30));
    }
    w2.record(q, Duration::from_secs(2));
    let text = m.encode();
    let h = "crossdns_query_duration_seconds";
    assert_eq!(
        lines(&text, h),
        [
            format!("{h}_sum 2.000063"),
            format!("{h}_count 6"),
            format!("{h}_bucket{{le=\"0.000005\"}} 3"),
            format!("{h}_bucket{{le=\"0.00001\"}} 3"),
            format!("{h}_bucket{{le=\"0.000025\"}} 3"),
            format!("{h}_bucket{{le=\"0.00005\"}} 5"),
            format!("{h}_bucket{{le=\"0.0001\"}} 5"),
            format!("{h}_bucket{{le=\"0.00025\"}} 5"),
            format!("{h}_bucket{{le=\"0.0005\"}} 5"),
            format!("{h}_bucket{{le=\"0.001\"}} 5"),
            format!("{h}_bucket{{le=\"0.005\"}} 5"),
            format!("{h}_bucket{{le=\"0.025\"}} 5"),
            format!("{h}_bucket{{le=\"0.1\"}} 5"),
            format!("{h}_bucket{{le=\"1.0\"}} 5"),
            format!("{h}_bucket{{le=\"+Inf\"}} 6"),
        ]
    );
}

#[test]
fn queries_count_by_zone_qtype_and_rcode_and_unknown_codes_count_as_other() {
    let m = Metrics::new(vec!["cluster.a".into(), "cluster.b".into()], vec![]);
    let w = m.worker();
    let d = Duration::from_micros(5);
    w.record(answered(Some(1), qtype::SRV, rcode::NXDOMAIN), d);
    w.record(answered(Some(1), qtype::SRV, rcode::NXDOMAIN), d);
    w.record(answered(None, 99, 7), d);
    w.record(
        Answered {
            truncated: true,
            ..answered(Some(0), qtype::AXFR, rcode::REFUSED)
        },
        d,
    );
    w.record_dropped();
    let text = m.encode();
    assert_eq!(
        lines(&text, "crossdns_queries_total"),
        [
            "crossdns_queries_total{zone=\"cluster.a\",qtype=\"AXFR\",rcode=\"REFUSED\"} 1",
            "crossdns_queries_total{zone=\"cluster.b\",qtype=\"SRV\",rcode=\"NXDOMAIN\"} 2",
            "crossdns_queries_total{zone=\"none\",qtype=\"other\",rcode=\"other\"} 1",
        ]
    );
    assert_eq!(
        lines(&text, "crossdns_responses_truncated_total"),
        ["crossdns_responses_truncated_total 1"]
    );
    assert_eq!(
        lines(&text, "crossdns_packets_dropped_total"),
        ["crossdns_packets_dropped_total 1"]
    );
}

/// A source owned elsewhere: one labelled counter and one histogram.
#[derive(Debug)]
struct Upstreamish(Arc<AtomicHistogram>);

const BOUNDS: [f64; 2] = [0.01, 0.1];

impl MetricSource for Upstreamish {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let labels = || vec![("upstream", "192.0.2.1:53".to_owned())];
        counter(enc, "thing_requests", "Requests.", &[(labels(), 7)])?;
        seconds_histogram(enc, "thing_rtt", "RTT.", &[(labels(), self.0.snapshot())])
    }
}

#[test]
fn registered_sources_follow_the_query_counters_in_both_formats() {
    let source = Arc::new(Upstreamish(Arc::new(AtomicHistogram::new(&BOUNDS))));
    source.0.observe(Duration::from_millis(5));
    source.0.observe(Duration::from_millis(50));
    source.0.observe(Duration::from_millis(500));
    let m = Metrics::new(vec![], vec![source]);
    let om = m.render(Format::OpenMetrics);
    let text = m.render(Format::Text004);
    let tail = |t: &str| -> String {
        let at = t.find("# HELP crossdns_thing").unwrap_or(t.len());
        t[at..].to_owned()
    };
    let us = "upstream=\"192.0.2.1:53\"";
    let u = format!("{{{us}");
    assert_eq!(
        tail(&om),
        format!(
            "# HELP crossdns_thing_requests Requests.\n# TYPE crossdns_thing_requests counter\n\
             crossdns_thing_requests_total{u}}} 7\n\
             # HELP crossdns_thing_rtt_seconds RTT.\n# TYPE crossdns_thing_rtt_seconds histogram\n\
             # UNIT crossdns_thing_rtt_seconds seconds\n\
             crossdns_thing_rtt_seconds_sum{u}}} 0.555\ncrossdns_thing_rtt_seconds_count{u}}} 3\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"0.01\",{us}}} 1\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"0.1\",{us}}} 2\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"+Inf\",{us}}} 3\n# EOF\n"
        )
    );
    assert_eq!(
        tail(&text),
        format!(
            "# HELP crossdns_thing_requests_total Requests.\n# TYPE crossdns_thing_requests_total counter\n\
             crossdns_thing_requests_total{u}}} 7\n\
             # HELP crossdns_thing_rtt_seconds RTT.\n# TYPE crossdns_thing_rtt_seconds histogram\n\
             crossdns_thing_rtt_seconds_sum{u}}} 0.555\ncrossdns_thing_rtt_seconds_count{u}}} 3\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"0.01\",{us}}} 1\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"0.1\",{us}}} 2\n\
             crossdns_thing_rtt_seconds_bucket{{le=\"+Inf\",{us}}} 3\n"
        )
    );
}

#[test]
fn a_histogram_scraped_while_threads_observe_keeps_inf_equal_to_its_count() {
    let h = Arc::new(AtomicHistogram::new(&BOUNDS));
    let m = Metrics::new(vec![], vec![Arc::new(Upstreamish(Arc::clone(&h)))]);
    let writers: Vec<_> = (0..2u64)
        .map(|i| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                for n in 0..200_000u64 {
                    h.observe(Duration::from_micros((n * (i + 1) * 37) % 200_000));
                }
            })
        })
        .collect();
    let value = |text: &str, prefix: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).expect(prefix);
        let v = line.rsplit(' ').next().expect("value");
        v.parse().expect("integer")
    };
    let mut scrapes = 0;
    while writers.iter().any(|w| !w.is_finished()) || scrapes == 0 {
        let text = m.encode();
        let count = value(&text, "crossdns_thing_rtt_seconds_count");
        let inf = value(
            &text,
            "crossdns_thing_rtt_seconds_bucket{le=\"+Inf\",upstream=\"192.0.2.1:53\"}",
        );
        assert_eq!(inf, count, "scrape {scrapes}");
        scrapes += 1;
    }
    for w in writers {
        w.join().expect("writer thread");
    }
    assert_eq!(h.snapshot().count(), 400_000);
}
