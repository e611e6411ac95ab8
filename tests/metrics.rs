//! `/metrics` as Prometheus reads it (design.md §5 "Observability"): the real
//! binary, real DNS queries over UDP and TCP, scrapes with the `Accept`
//! headers scrapers send, and the official consumers of the text:
//! `promtool check metrics` and the Python `prometheus_client` parsers (a
//! missing tool skips its check loudly, or fails it when env `CI` is set).
//! Counters and histogram counts must grow by exactly what was sent.

mod common;
mod metrics_support;

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RecordType;
use metrics_support::{
    ACCEPT_PROMETHEUS, ACCEPT_TEXT, CLUSTER_ZONE, CLUSTERSET_ZONE, FORWARD_ZONE, OPENMETRICS_TYPE,
    PyParser, Sample, TEXT_TYPE,
};

/// The queries sent: (over TCP?, name, type, the zone label it counts under).
fn query_table() -> Vec<(bool, String, RecordType, &'static str)> {
    let region1 = |n: &str| format!("{n}.{CLUSTER_ZONE}.");
    let set = |n: &str| format!("{n}.{CLUSTERSET_ZONE}.");
    let region2 = |n: &str| format!("{n}.{FORWARD_ZONE}.");
    let mut t = Vec::new();
    for tcp in [false, true] {
        let n = if tcp { 2 } else { 5 };
        for _ in 0..n {
            t.push((tcp, region1("web.shop.svc"), RecordType::A, CLUSTER_ZONE));
        }
        for _ in 0..n - 1 {
            t.push((tcp, region1("web.shop.svc"), RecordType::AAAA, CLUSTER_ZONE));
            t.push((tcp, region1("nope.shop.svc"), RecordType::A, CLUSTER_ZONE));
        }
        t.push((
            tcp,
            region1("_http._tcp.web.shop.svc"),
            RecordType::SRV,
            CLUSTER_ZONE,
        ));
        t.push((tcp, region1("web.shop.svc"), RecordType::TXT, CLUSTER_ZONE));
        t.push((tcp, set("web.shop.svc"), RecordType::A, CLUSTERSET_ZONE));
        t.push((tcp, set("nope.shop.svc"), RecordType::A, CLUSTERSET_ZONE));
        for _ in 0..n {
            t.push((tcp, region2("web.shop.svc"), RecordType::A, FORWARD_ZONE));
        }
        t.push((tcp, region2("nope.shop.svc"), RecordType::A, FORWARD_ZONE));
        // In no zone crossdns serves: REFUSED, counted under zone "none".
        t.push((tcp, "example.com.".to_owned(), RecordType::A, "none"));
    }
    t
}

fn rcode_name(m: &Message) -> String {
    format!("{:?}", m.metadata.response_code).to_ascii_uppercase()
}

/// What one scrape says about the counters this test drives.
#[derive(Debug, PartialEq)]
struct Counts {
    queries: BTreeMap<(String, String, String), f64>,
    duration_count: f64,
    dropped: f64,
    truncated: f64,
    hits: f64,
    misses: f64,
    upstream_requests: f64,
    rtt_count: f64,
}

fn counts(s: &[Sample]) -> Counts {
    let queries = s
        .iter()
        .filter(|x| x.name == "crossdns_queries_total")
        .map(|x| {
            let l = |k: &str| x.labels.get(k).cloned().unwrap_or_default();
            ((l("zone"), l("qtype"), l("rcode")), x.value)
        })
        .collect();
    let zone = [("zone", FORWARD_ZONE)];
    Counts {
        queries,
        duration_count: metrics_support::value(s, "crossdns_query_duration_seconds_count", &[]),
        dropped: metrics_support::value(s, "crossdns_packets_dropped_total", &[]),
        truncated: metrics_support::value(s, "crossdns_responses_truncated_total", &[]),
        hits: metrics_support::value(s, "crossdns_forward_cache_hits_total", &zone),
        misses: metrics_support::value(s, "crossdns_forward_cache_misses_total", &zone),
        upstream_requests: metrics_support::sum(
            s,
            "crossdns_forward_upstream_requests_total",
            &zone,
        ),
        rtt_count: metrics_support::sum(s, "crossdns_forward_upstream_rtt_seconds_count", &zone),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_grow_by_exactly_the_queries_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = metrics_support::start(dir.path()).await;
    let server = &servers.crossdns;
    let before = metrics_support::scrape(server, Some(ACCEPT_PROMETHEUS)).await;
    metrics_support::check_histograms(&before.text).expect("histograms before the queries");
    let before = counts(&metrics_support::samples(&before.text));

    // Send every query and tally what its reply says.
    let table = query_table();
    let mut expected: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut truncated = 0.0;
    for (tcp, name, rtype, zone) in &table {
        let reply = if *tcp {
            common::query_tcp(server.dns, name, *rtype).await
        } else {
            common::query_udp(server.dns, name, *rtype).await
        };
        if reply.metadata.truncation {
            truncated += 1.0;
        }
        let key = ((*zone).to_owned(), rtype.to_string(), rcode_name(&reply));
        *expected.entry(key).or_default() += 1.0;
    }
    let rcodes: Vec<&str> = expected.keys().map(|k| k.2.as_str()).collect();
    for want in ["NOERROR", "NXDOMAIN", "REFUSED"] {
        assert!(
            rcodes.contains(&want),
            "the table must produce {want}: {expected:?}"
        );
    }
    // Two packets that are responses: no reply, counted as dropped.
    let mut response = common::make_query("web.shop.svc.cluster.region1.", RecordType::A, None);
    response.metadata.message_type = MessageType::Response;
    let bytes = response.to_vec().expect("encode");
    for _ in 0..2 {
        assert_eq!(
            common::udp_raw(server.dns, &bytes, Duration::from_millis(200)).await,
            None
        );
    }
    // They get no reply, so wait until the listener has counted them.
    let dropped = common::wait_for(Duration::from_secs(5), async || {
        let s = metrics_support::scrape(server, None).await;
        counts(&metrics_support::samples(&s.text)).dropped >= before.dropped + 2.0
    })
    .await;
    assert!(
        dropped.is_some(),
        "the two dropped packets were never counted"
    );

    for (accept, format) in [
        (ACCEPT_PROMETHEUS, "OpenMetrics"),
        (ACCEPT_TEXT, "text 0.0.4"),
    ] {
        let after = metrics_support::scrape(server, Some(accept)).await;
        let checked = metrics_support::check_histograms(&after.text)
            .unwrap_or_else(|e| panic!("{format}: {e}\n{}", after.text));
        assert!(
            checked.contains(&"crossdns_query_duration_seconds".to_owned()),
            "{checked:?}"
        );
        assert!(
            checked.contains(&"crossdns_forward_upstream_rtt_seconds".to_owned()),
            "{checked:?}"
        );
        let after = counts(&metrics_support::samples(&after.text));
        let mut grown = after.queries.clone();
        for (k, v) in &before.queries {
            *grown.entry(k.clone()).or_default() -= v;
        }
        grown.retain(|_, v| *v != 0.0);
        assert_eq!(grown, expected, "{format}: crossdns_queries_total grew by");
        let sent = table.len() as f64;
        assert_eq!(
            after.duration_count - before.duration_count,
            sent,
            "{format}: _count"
        );
        assert_eq!(
            after.dropped - before.dropped,
            2.0,
            "{format}: packets dropped"
        );
        assert_eq!(
            after.truncated - before.truncated,
            truncated,
            "{format}: truncated"
        );
        let forwarded = table.iter().filter(|q| q.3 == FORWARD_ZONE).count() as f64;
        let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
        assert_eq!(hits + misses, forwarded, "{format}: cache hits + misses");
        // Two names: at least one miss each; the rest is cached (ttl 5 s).
        assert!(
            misses >= 2.0 && hits >= 1.0,
            "{format}: {hits} hits, {misses} misses"
        );
        let requests = after.upstream_requests - before.upstream_requests;
        assert_eq!(
            requests, misses,
            "{format}: every miss is one upstream request"
        );
        assert_eq!(
            after.rtt_count - before.rtt_count,
            requests,
            "{format}: rtt _count"
        );
    }
}

/// The `# TYPE` names of the counter families in OpenMetrics text.
fn counter_families(text: &str) -> Vec<String> {
    metrics_support::types(text)
        .into_iter()
        .filter(|(_, t)| t == "counter")
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_passes_promtool_and_the_python_parsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = metrics_support::start(dir.path()).await;
    let server = &servers.crossdns;
    // Something in every family: one answered and one forwarded query.
    let name = format!("web.shop.svc.{CLUSTER_ZONE}.");
    common::query_udp(server.dns, &name, RecordType::A).await;
    common::query_udp(
        server.dns,
        &format!("web.shop.svc.{FORWARD_ZONE}."),
        RecordType::A,
    )
    .await;

    for (accept, want) in [
        (None, TEXT_TYPE),
        (Some(ACCEPT_PROMETHEUS), OPENMETRICS_TYPE),
        (Some("application/openmetrics-text"), OPENMETRICS_TYPE),
        (Some(ACCEPT_TEXT), TEXT_TYPE),
        (Some("*/*"), TEXT_TYPE),
        (
            Some("application/openmetrics-text;q=0.2,text/plain;q=0.9"),
            TEXT_TYPE,
        ),
        (Some("application/json"), TEXT_TYPE),
    ] {
        let got = metrics_support::scrape(server, accept).await.content_type;
        assert_eq!(got, want, "Accept: {accept:?}");
    }

    let om = metrics_support::scrape(server, Some(ACCEPT_PROMETHEUS))
        .await
        .text;
    let text = metrics_support::scrape(server, Some(ACCEPT_TEXT))
        .await
        .text;
    assert!(
        om.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF:\n{om}"
    );
    assert!(om.contains("# UNIT crossdns_query_duration_seconds seconds\n"));
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "0.0.4 text:\n{text}"
    );
    let counters = counter_families(&om);
    assert!(
        counters.contains(&"crossdns_queries".to_owned()),
        "{counters:?}"
    );
    for c in &counters {
        assert!(
            !c.ends_with("_total"),
            "OpenMetrics names the family {c} without _total"
        );
        let total = format!("{c}_total");
        assert!(
            text.contains(&format!("# HELP {total} ")),
            "0.0.4 HELP of {total}"
        );
        assert!(
            text.contains(&format!("# TYPE {total} counter\n")),
            "0.0.4 TYPE of {total}"
        );
    }
    // prometheus-client writes HELP text as given; these characters would
    // need escaping, differently in each format.
    for help in om.lines().filter(|l| l.starts_with("# HELP ")) {
        assert!(!help.contains(['\\', '"']), "HELP needing escapes: {help}");
    }
    let om_samples = metrics_support::samples(&om);
    let text_samples = metrics_support::samples(&text);
    let names = |s: &[Sample]| s.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&om_samples),
        names(&text_samples),
        "same samples in both formats"
    );

    // promtool reads text 0.0.4: not one finding there. It reads OpenMetrics
    // as 0.0.4 too, which names a counter's HELP without `_total`: that is
    // the only finding allowed there.
    if let Some(problems) = metrics_support::promtool_problems(&text) {
        assert_eq!(problems, "", "0.0.4 text:\n{text}");
    }
    if let Some(problems) = metrics_support::promtool_problems(&om) {
        for line in problems.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let inherent = counters
                .iter()
                .any(|c| line.trim() == format!("{c}_total no help text"));
            assert!(inherent, "promtool on OpenMetrics: {line:?}\n{problems}");
        }
    }

    for (parser, input, ours) in [
        (PyParser::OpenMetrics, &om, &om_samples),
        (PyParser::Text, &text, &text_samples),
    ] {
        let Some(parsed) = metrics_support::python_parse(input, parser) else {
            continue;
        };
        let parsed = parsed.unwrap_or_else(|e| panic!("{parser:?} parser refused the scrape: {e}"));
        let theirs: Vec<Sample> = parsed.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(
            &theirs, ours,
            "{parser:?}: the parser reads what this test reads"
        );
        let histograms: Vec<&str> = parsed
            .iter()
            .filter(|(t, _)| t == "histogram")
            .map(|(_, s)| s.name.as_str())
            .collect();
        assert!(
            histograms.contains(&"crossdns_query_duration_seconds_bucket"),
            "{parser:?}"
        );
    }
}
