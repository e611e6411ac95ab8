//! The shipped Grafana dashboard (`configs/grafana/crossdns.json`): a
//! well-formed dashboard whose every PromQL expression parses (promql-parser,
//! and Prometheus' own parser through `promtool check rules` where it is
//! installed), and whose every series, label and histogram bucket exists in
//! a real scrape of the real binary.

mod common;
mod metrics_support;

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::RecordType;
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value;

fn dashboard() -> Value {
    let path = common::repo_root().join("configs/grafana/crossdns.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard: panel targets, and the series
/// selectors of `label_values(...)` template variables, with the panel (or
/// variable) they come from.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target without expr");
            out.push((
                p["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating.list") {
        if let Some(q) = v["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','));
            let (selector, _label) = inner.unwrap_or_else(|| panic!("variable query {q}"));
            out.push((
                format!("${}", v["name"].as_str().unwrap_or("?")),
                selector.to_owned(),
            ));
        }
    }
    out
}

/// Grafana's variables as Prometheus sees them once Grafana substituted them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$instance", ".*")
}

/// What an expression reads: each series selector's metric name and the
/// label names it matches on, the labels each aggregation keeps, and
/// whether every `histogram_quantile` keeps `le` over `_bucket` series.
#[derive(Debug, Default)]
struct Reads {
    selectors: Vec<(String, Vec<String>)>,
    /// (labels kept by `by (...)`, metric names inside the aggregation).
    groupings: Vec<(Vec<String>, Vec<String>)>,
    quantile_problems: Vec<String>,
}

fn selector_name(vs: &VectorSelector) -> String {
    vs.name.clone().unwrap_or_else(|| {
        let m = vs.matchers.matchers.iter();
        let by_name = m
            .clone()
            .find(|m| m.name == "__name__" && m.op == MatchOp::Equal);
        by_name.map_or_else(String::new, |m| m.value.clone())
    })
}

fn walk(e: &Expr, r: &mut Reads) {
    match e {
        Expr::VectorSelector(vs) => select(vs, r),
        Expr::MatrixSelector(ms) => select(&ms.vs, r),
        Expr::Aggregate(a) => {
            let before = r.selectors.len();
            walk(&a.expr, r);
            if let Some(p) = &a.param {
                walk(p, r);
            }
            if let Some(LabelModifier::Include(labels)) = &a.modifier {
                let inside = r.selectors[before..].iter().map(|s| s.0.clone()).collect();
                r.groupings.push((labels.labels.clone(), inside));
            }
        }
        Expr::Call(c) => {
            if c.func.name == "histogram_quantile"
                && let Some(arg) = c.args.args.get(1)
                && !keeps_buckets(arg)
            {
                r.quantile_problems.push(e.to_string());
            }
            for a in &c.args.args {
                walk(a, r);
            }
        }
        Expr::Binary(b) => {
            walk(&b.lhs, r);
            walk(&b.rhs, r);
        }
        Expr::Paren(p) => walk(&p.expr, r),
        Expr::Unary(u) => walk(&u.expr, r),
        Expr::Subquery(s) => walk(&s.expr, r),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn select(vs: &VectorSelector, r: &mut Reads) {
    let labels = vs
        .matchers
        .matchers
        .iter()
        .map(|m| m.name.clone())
        .collect();
    r.selectors.push((selector_name(vs), labels));
}

/// The argument of `histogram_quantile` still has `le` and reads `_bucket`.
fn keeps_buckets(e: &Expr) -> bool {
    match e {
        Expr::Aggregate(a) => {
            let keeps = match &a.modifier {
                Some(LabelModifier::Include(l)) => l.labels.iter().any(|x| x == "le"),
                Some(LabelModifier::Exclude(l)) => !l.labels.iter().any(|x| x == "le"),
                None => false,
            };
            keeps && keeps_buckets(&a.expr)
        }
        Expr::Paren(p) => keeps_buckets(&p.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| keeps_buckets(a)),
        Expr::Binary(b) => keeps_buckets(&b.lhs) && keeps_buckets(&b.rhs),
        Expr::MatrixSelector(ms) => selector_name(&ms.vs).ends_with("_bucket"),
        Expr::VectorSelector(vs) => selector_name(vs).ends_with("_bucket"),
        _ => false,
    }
}

fn reads(expr: &str) -> Reads {
    let ast = parser::parse(&substitute(expr)).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut r = Reads::default();
    walk(&ast, &mut r);
    r
}

#[test]
fn metric_names_come_out_of_functions_matchers_groupings_and_binary_operators() {
    let r = reads(
        "histogram_quantile(0.99, sum by (zone, le) (rate(a_seconds_bucket{instance=~\"$instance\",zone!=\"x\"}[$__rate_interval])))\
         / on (zone) group_left max by (zone) (b_total offset 5m) + count({__name__=\"c\"}) * scalar(d_count)",
    );
    let names: Vec<&str> = r.selectors.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["a_seconds_bucket", "b_total", "c", "d_count"]);
    assert_eq!(r.selectors[0].1, ["instance", "zone"]);
    assert_eq!(
        r.groupings[0],
        (
            vec!["zone".into(), "le".into()],
            vec!["a_seconds_bucket".into()]
        )
    );
    assert!(r.quantile_problems.is_empty());
    let lost = reads("histogram_quantile(0.5, sum(rate(a_bucket[5m])))").quantile_problems;
    assert_eq!(lost.len(), 1, "a quantile over a sum without le is caught");
    let bare = reads("histogram_quantile(0.5, rate(a_seconds[5m]))").quantile_problems;
    assert_eq!(
        bare.len(),
        1,
        "a quantile over a series that is not _bucket is caught"
    );
}

#[test]
fn the_dashboard_is_a_well_formed_grafana_dashboard() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    for key in ["title", "uid"] {
        assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(
        (&ds["type"], &ds["query"]),
        (&Value::from("datasource"), &Value::from("prometheus"))
    );
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut rows = 0;
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "{title}: id used twice"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().expect("x"), g["w"].as_u64().expect("w"));
        assert!(
            g["y"].is_u64() && g["h"].as_u64().is_some_and(|h| h > 0) && x + w <= 24,
            "{title}: {g}"
        );
        match p["type"].as_str().expect("type") {
            "row" => rows += 1,
            "timeseries" | "stat" => {
                assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
                assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
                let targets = p["targets"].as_array().expect("targets");
                assert!(!targets.is_empty(), "{title}: no targets");
                let refs: BTreeSet<&str> =
                    targets.iter().filter_map(|t| t["refId"].as_str()).collect();
                assert_eq!(
                    refs.len(),
                    targets.len(),
                    "{title}: refIds missing or repeated"
                );
                assert!(
                    p["description"].as_str().is_some_and(|s| !s.is_empty()),
                    "{title}"
                );
            }
            other => panic!("{title}: panel type {other} is not checked here"),
        }
    }
    assert_eq!(rows, 4, "rows: queries, clusters, clusterset, forwarding");

    // Prometheus' own parser, through a rules file of every expression.
    let exprs = expressions(&d);
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            format!(
                "      - record: dashboard:expr{i}\n        expr: {:?}\n",
                substitute(e)
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .expect("write rules");
    if let Some(problems) = metrics_support::promtool_rules_problems(&file) {
        assert_eq!(problems, "", "{rules}");
    }
    for (panel, e) in &exprs {
        let r = reads(e);
        assert!(
            r.quantile_problems.is_empty(),
            "{panel}: {:?}",
            r.quantile_problems
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_and_label_the_dashboard_reads_is_in_a_real_scrape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = metrics_support::start(dir.path()).await;
    let server = &servers.crossdns;
    for name in [
        format!("web.shop.svc.{}.", metrics_support::CLUSTER_ZONE),
        format!("web.shop.svc.{}.", metrics_support::FORWARD_ZONE),
    ] {
        common::query_udp(server.dns, &name, RecordType::A).await;
    }
    // What Prometheus stores: the sample names and labels of the scrape.
    let scrape = metrics_support::scrape(server, None).await.text;
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in metrics_support::samples(&scrape) {
        series
            .entry(s.name)
            .or_default()
            .extend(s.labels.into_keys());
    }
    // Prometheus adds these to every series it scrapes.
    let target = ["instance", "job", "__name__"];
    let mut used = BTreeSet::new();
    for (panel, e) in expressions(&dashboard()) {
        let r = reads(&e);
        assert!(!r.selectors.is_empty(), "{panel}: {e} reads no series");
        for (name, labels) in &r.selectors {
            let have = series.get(name).unwrap_or_else(|| {
                panic!("{panel}: {name} is in no scrape sample ({e})\n{scrape}")
            });
            for l in labels.iter().filter(|l| !target.contains(&l.as_str())) {
                assert!(have.contains(l), "{panel}: {name} has no label {l} ({e})");
            }
            used.insert(name.clone());
        }
        for (by, inside) in &r.groupings {
            for l in by.iter().filter(|l| !target.contains(&l.as_str())) {
                let somewhere = inside
                    .iter()
                    .any(|n| series.get(n).is_some_and(|s| s.contains(l)));
                assert!(
                    somewhere,
                    "{panel}: by ({l}) over {inside:?}, which have no {l} ({e})"
                );
            }
        }
    }
    // The panels the issue asks for read these.
    for name in [
        "crossdns_queries_total",
        "crossdns_query_duration_seconds_bucket",
        "crossdns_cluster_synced",
        "crossdns_cluster_failing_seconds",
        "crossdns_cluster_watch_restarts_total",
        "crossdns_clusterset_cluster_transitions_total",
        "crossdns_clusterset_all_down_total",
        "crossdns_forward_upstream_up",
        "crossdns_forward_cache_hits_total",
        "crossdns_forward_cache_misses_total",
    ] {
        assert!(used.contains(name), "the dashboard does not read {name}");
    }
}
