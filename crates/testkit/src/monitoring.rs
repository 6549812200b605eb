//! Checks that dashboards and alert rules query only metrics a controller exports: the PromQL
//! of every Grafana panel, template variable and Prometheus rule in a rendered chart is parsed
//! with `promql-parser`, and the metric names it selects are compared with a `/metrics` scrape.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{self, Expr};
use serde_json::Value;

use crate::helm::Objects;

/// Metric names selected by `expr`. Grafana's interval macros become `5m` first.
pub fn selected_metrics(expr: &str) -> Result<BTreeSet<String>, String> {
    let promql = ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(expr.to_string(), |e, m| e.replace(m, "5m"));
    let ast = parser::parse(&promql).map_err(|e| format!("{expr}: {e}"))?;
    let mut names = BTreeSet::new();
    collect(&ast, &mut names);
    Ok(names)
}

fn collect(expr: &Expr, names: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(vs) => names.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => names.extend(ms.vs.name.clone()),
        Expr::Aggregate(a) => {
            collect(&a.expr, names);
            if let Some(p) = &a.param {
                collect(p, names);
            }
        }
        Expr::Unary(u) => collect(&u.expr, names),
        Expr::Binary(b) => {
            collect(&b.lhs, names);
            collect(&b.rhs, names);
        }
        Expr::Paren(p) => collect(&p.expr, names),
        Expr::Subquery(s) => collect(&s.expr, names),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every PromQL expression of the dashboards (ConfigMaps whose data holds Grafana JSON) and
/// PrometheusRules among `objects`, keyed by where it was found (`dashboard x.json panel "T"`).
/// A template variable's `label_values(selector, label)` counts as its selector.
pub fn queries(objects: &Objects) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for cm in objects.of_kind("ConfigMap") {
        let Some(data) = cm["data"].as_object() else {
            continue;
        };
        for (file, text) in data {
            let Some(dashboard) = text
                .as_str()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .filter(|d| d.get("panels").is_some())
            else {
                continue;
            };
            dashboard_queries(&dashboard, &format!("dashboard {file}"), &mut found);
        }
    }
    for rule_set in objects.of_kind("PrometheusRule") {
        let name = rule_set["metadata"]["name"].as_str().unwrap_or_default();
        for group in rule_set["spec"]["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let id = rule["alert"].as_str().or(rule["record"].as_str());
                if let (Some(id), Some(expr)) = (id, rule["expr"].as_str()) {
                    found.insert(format!("PrometheusRule {name} rule {id}"), expr.to_string());
                }
            }
        }
    }
    found
}

fn dashboard_queries(dashboard: &Value, at: &str, found: &mut BTreeMap<String, String>) {
    let mut panels: Vec<&Value> = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        panels.push(p);
    }
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        for (i, t) in p["targets"].as_array().into_iter().flatten().enumerate() {
            if let Some(expr) = t["expr"].as_str() {
                found.insert(format!("{at} panel {title:?} target {i}"), expr.to_string());
            }
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = v["query"]["query"].as_str().or(v["query"].as_str());
        let Some(q) = query.filter(|_| v["type"] == "query") else {
            continue;
        };
        let name = v["name"].as_str().unwrap_or_default();
        let selector = q
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map_or(q, |(selector, _)| selector);
        found.insert(format!("{at} variable {name}"), selector.to_string());
    }
}

/// The metric names a `/metrics` scrape exports: each `# TYPE` family, and for histograms
/// and summaries the `_bucket`, `_sum` and `_count` series.
pub fn exported_metrics(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_string());
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every query among `objects` whose metrics are not all in `exported`, with the names
/// missing; also every query that does not parse. Empty when the dashboards and rules only
/// query what the controller exports. Panics when `objects` hold no query at all.
pub fn unexported_queries(objects: &Objects, exported: &BTreeSet<String>) -> Vec<String> {
    let all = queries(objects);
    assert!(!all.is_empty(), "no dashboard or rule was rendered");
    let mut problems = Vec::new();
    for (at, expr) in all {
        match selected_metrics(&expr) {
            Ok(names) if names.is_empty() => problems.push(format!("{at}: selects no metric")),
            Ok(names) => {
                let missing: Vec<_> = names.difference(exported).cloned().collect();
                if !missing.is_empty() {
                    problems.push(format!("{at}: {missing:?} not exported ({expr})"));
                }
            }
            Err(e) => problems.push(format!("{at}: does not parse: {e}")),
        }
    }
    problems
}

/// Renders `deploy/charts/<chart>` with `--set <set>` and asserts that it holds at least
/// `min_dashboard` dashboard queries and `min_rules` alert rules, and that each of them
/// queries only names in `exported` (see [`unexported_queries`]). Returns the objects.
pub fn assert_chart_queries_exported(
    chart: &str,
    set: &str,
    exported: &BTreeSet<String>,
    (min_dashboard, min_rules): (usize, usize),
) -> Objects {
    let dir = crate::repo_root().join("deploy/charts").join(chart);
    let rendered = crate::helm::template(
        &dir.display().to_string(),
        chart,
        "default",
        &["--set", set],
    )
    .unwrap_or_else(|e| panic!("helm template {chart}: {e}"));
    let objects = Objects::parse(&rendered);
    let all = queries(&objects);
    let count = |prefix: &str| all.keys().filter(|k| k.starts_with(prefix)).count();
    assert!(
        count("dashboard") >= min_dashboard && count("PrometheusRule") >= min_rules,
        "{chart}: fewer queries than expected: {all:#?}"
    );
    let problems = unexported_queries(&objects, exported);
    assert!(
        problems.is_empty(),
        "{chart}: {problems:#?}\nexported: {exported:#?}"
    );
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_found_through_functions_aggregations_and_operators() {
        let names = selected_metrics(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))
               / clamp_min(sum(b), 1) or vector(0) + (count(c == 1) or on() d offset 5m)"#,
        )
        .unwrap();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["a_bucket", "b", "c", "d"]
        );
        assert!(selected_metrics("sum(rate(x[5m]").is_err());
    }

    #[test]
    fn histograms_export_their_series_and_untyped_lines_are_ignored() {
        let scrape = "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE c counter\nc 1\nstray 2\n";
        let names = exported_metrics(scrape);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["c", "h", "h_bucket", "h_count", "h_sum"]
        );
    }

    #[test]
    fn a_query_of_an_unexported_metric_is_reported() {
        let objects = Objects::parse(
            r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r}
spec:
  groups:
    - name: g
      rules:
        - alert: Known
          expr: rate(known_total[5m]) > 0
        - alert: Unknown
          expr: rate(known_total[5m]) / rate(renamed_total[5m]) > 0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d}
data:
  d.json: '{"panels": [{"title": "T", "panels": [{"title": "Inner", "targets": [{"expr": "bad("}]}]}],
            "templating": {"list": [{"name": "job", "type": "query", "query": {"query": "label_values(gone{x=\"1\"}, job)"}}]}}'
"#,
        );
        let exported = ["known_total".to_string()].into();
        let problems = unexported_queries(&objects, &exported);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Unknown") && p.contains("renamed_total"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Inner") && p.contains("does not parse"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("variable job") && p.contains("gone"))
        );
    }
}
