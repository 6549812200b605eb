//! `cargo xtask rbac-report [--check]`: the permissions each chart grants its controller's
//! ServiceAccount against those the controller exercised in the test run.
//!
//! Test clusters log every permission a ServiceAccount uses for the first time
//! (`<target>/rbac-usage/*.jsonl`, devcluster's `permission_log`). This renders each chart as
//! its tests install it (`helm template`), resolves the bindings of the controller's
//! ServiceAccount to their rules, and lists:
//! - grants no test exercised (least privilege: a rule nothing uses should go, or be justified
//!   in [`NOT_EXERCISED`] because the tests cannot reach it);
//! - permissions exercised but not granted (only possible in a cluster with RBAC off: the real
//!   server would answer 403).
//!
//! With `--check` either finding fails, so a chart cannot gain an unused rule unnoticed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

/// A chart and how its tests install it: release name, namespace and values file; the
/// controller's ServiceAccount is named by `service_account` (end-to-end tests run the
/// controller as a ServiceAccount of that name, in whatever namespace they use).
struct Chart {
    dir: &'static str,
    release: &'static str,
    namespace: &'static str,
    /// The `helm template` arguments of each rendering the tests use (the chart grants the
    /// union: rules behind a value are checked too).
    renders: &'static [&'static [&'static str]],
    service_account: &'static str,
}

const CHARTS: [Chart; 3] = [
    Chart {
        dir: "deploy/charts/sealed-secrets",
        release: "sealed-secrets-controller",
        namespace: "kube-system",
        renders: &[&[], &["--set", "extraArgs={--old-gc-behavior=true}"]],
        service_account: "sealed-secrets-controller",
    },
    Chart {
        dir: "deploy/charts/external-secrets",
        release: "external-secrets",
        namespace: "ops",
        renders: &[
            &[
                "-f",
                "crates/external-secrets/tests/fixtures/chart/install.yaml",
            ],
            &[
                "-f",
                "crates/external-secrets/tests/fixtures/chart/install.yaml",
                "--set",
                "extraArgs.metrics-auth=true",
            ],
        ],
        service_account: "external-secrets",
    },
    Chart {
        dir: "deploy/charts/reloader",
        release: "reloader",
        namespace: "ops",
        renders: &[
            &["-f", "crates/reloader/tests/fixtures/chart/install.yaml"],
            &[
                "-f",
                "crates/reloader/tests/fixtures/chart/install.yaml",
                "--set",
                "reloader.enableHA=true,reloader.isArgoRollouts=true,reloader.enableCSIIntegration=true,reloader.namespaceSelector=team=a",
            ],
        ],
        service_account: "reloader",
    },
];

/// Grants the tests cannot exercise, with the reason they stay: (chart directory, grant as
/// [`Grant::key`] prints it, why).
const NOT_EXERCISED: &[(&str, &str, &str)] = &[
    (
        "deploy/charts/external-secrets",
        "* *.generators.external-secrets.io",
        "upstream's ClusterRole grants every generator kind; kinds this controller does not run yet are never read",
    ),
    (
        "deploy/charts/external-secrets",
        "update *.external-secrets.io/finalizers",
        "setting blockOwnerDeletion needs it where OwnerReferencesPermissionEnforcement is on (OpenShift); devcluster does not run that admission plugin",
    ),
    (
        "deploy/charts/external-secrets",
        "update *.external-secrets.io",
        "upstream's controller updates finalizers with update; this one patches, the grant stays for drop-in RBAC",
    ),
    (
        "deploy/charts/external-secrets",
        "create *",
        "objects are created by server-side apply (patch); create stays for drop-in RBAC",
    ),
    (
        "deploy/charts/external-secrets",
        "get *",
        "reconcilers read from watch caches; get stays for drop-in RBAC",
    ),
    (
        "deploy/charts/external-secrets",
        "update leases.coordination.k8s.io",
        "Lease renewal: the end-to-end tests run one replica without leader election; the kit's renewal is exercised by sealed-secrets' HA tests",
    ),
    (
        "deploy/charts/reloader",
        "get *",
        "the reloader reads from watch caches; get stays for drop-in RBAC with upstream's chart",
    ),
    (
        "deploy/charts/reloader",
        "create configmaps",
        "the reloader-meta-info ConfigMap, written only when RELOADER_DEPLOYMENT_NAME is set (a pod of the chart)",
    ),
];

/// One permission a ServiceAccount exercised, as devcluster logs it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Used {
    user: String,
    /// Whether the cluster enforced RBAC (then the test itself proved each use was granted,
    /// under whatever values it rendered the chart with).
    #[serde(default)]
    rbac: bool,
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    namespace: String,
}

impl Used {
    fn key(&self) -> String {
        key(&self.verb, &self.group, &self.resource, &self.subresource)
    }
}

/// One (verb, group, resource) a rule grants; `*` matches anything, `resource` may carry a
/// subresource (`sealedsecrets/status`) or be `resource/*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    verb: String,
    group: String,
    resource: String,
}

impl Grant {
    fn key(&self) -> String {
        let (resource, sub) = self
            .resource
            .split_once('/')
            .unwrap_or((&self.resource, ""));
        key(&self.verb, &self.group, resource, sub)
    }

    fn covers(&self, used: &Used) -> bool {
        let any = |granted: &str, value: &str| granted == "*" || granted == value;
        let resource = match self.resource.split_once('/') {
            None => {
                self.resource == "*"
                    || (self.resource == used.resource && used.subresource.is_empty())
            }
            Some((res, sub)) => (res == "*" || res == used.resource) && any(sub, &used.subresource),
        };
        any(&self.verb, &used.verb) && any(&self.group, &used.group) && resource
    }
}

/// `verb resource[.group][/subresource]`, as `kubectl auth can-i` names a permission.
fn key(verb: &str, group: &str, resource: &str, sub: &str) -> String {
    let mut out = format!("{verb} {resource}");
    if !group.is_empty() {
        out.push('.');
        out.push_str(group);
    }
    if !sub.is_empty() {
        out.push('/');
        out.push_str(sub);
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The grants of every Role and ClusterRole bound to ServiceAccount `namespace/name` in the
/// rendered `objects` (roles the rendering does not contain are reported by name).
fn grants_for(objects: &[Value], namespace: &str, name: &str) -> (BTreeSet<Grant>, Vec<String>) {
    let mut grants = BTreeSet::new();
    let mut missing = Vec::new();
    let bindings = objects.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        ) && o["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| match s["kind"].as_str() {
                Some("ServiceAccount") => {
                    s["name"] == name && s["namespace"].as_str().unwrap_or(namespace) == namespace
                }
                // the groups every ServiceAccount token carries
                Some("Group") => s["name"].as_str().is_some_and(|g| {
                    g == "system:authenticated"
                        || g == "system:serviceaccounts"
                        || g == format!("system:serviceaccounts:{namespace}")
                }),
                _ => false,
            })
        })
    });
    for binding in bindings {
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let Some(role) = objects
            .iter()
            .find(|o| o["kind"] == role_kind && o["metadata"]["name"] == role_name)
        else {
            missing.push(format!("{role_kind} {role_name}"));
            continue;
        };
        for rule in role["rules"].as_array().into_iter().flatten() {
            for verb in strings(&rule["verbs"]) {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        grants.insert(Grant {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource,
                        });
                    }
                }
            }
        }
    }
    (grants, missing)
}

/// Every permission logged under `dir`, or nothing when no test logged any.
fn read_usage(dir: &Path) -> anyhow::Result<Vec<Used>> {
    let mut used = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            // a line cut short by a test killed mid-write is skipped, not fatal
            if let Ok(u) = serde_json::from_str::<Used>(line) {
                used.insert(u);
            }
        }
    }
    Ok(used.into_iter().collect())
}

fn render(root: &Path, helm: &Path, chart: &Chart, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let home = crate::target_dir(root).join("xtask-helm-home");
    let out = Command::new(helm)
        .current_dir(root)
        .args(["template", chart.release, chart.dir, "-n", chart.namespace])
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context("running helm template")?;
    if !out.status.success() {
        bail!(
            "helm template {}: {}",
            chart.dir,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Whether `key` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, key: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = key.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// What one chart's report found.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    used: Vec<String>,
    unused: Vec<String>,
    ungranted: Vec<String>,
}

fn compare(grants: &BTreeSet<Grant>, used: &[&Used]) -> Findings {
    let mut findings = Findings::default();
    for grant in grants {
        // a watcher needs both list and watch: either one exercised uses the pair (a watch
        // that starts before its CRD exists may never get to its list in a short test)
        let partner = match grant.verb.as_str() {
            "list" => Some("watch"),
            "watch" => Some("list"),
            _ => None,
        };
        let paired = partner.map(|verb| Grant {
            verb: verb.into(),
            ..grant.clone()
        });
        if used
            .iter()
            .any(|u| grant.covers(u) || paired.as_ref().is_some_and(|p| p.covers(u)))
        {
            findings.used.push(grant.key());
        } else {
            findings.unused.push(grant.key());
        }
    }
    let ungranted: BTreeSet<String> = used
        .iter()
        .filter(|u| !u.rbac && !grants.iter().any(|g| g.covers(u)))
        .map(|u| u.key())
        .collect();
    findings.ungranted = ungranted.into_iter().collect();
    findings
}

/// Prints the report; with `check`, fails on an unjustified unused grant or an ungranted use.
pub fn run(root: &Path, check: bool) -> anyhow::Result<()> {
    let usage_dir = crate::target_dir(root).join("rbac-usage");
    let usage = read_usage(&usage_dir)?;
    let helm = crate::tools::ensure_kube_tools(root)?.join("helm");
    let mut problems = Vec::new();
    for chart in &CHARTS {
        let mut grants = BTreeSet::new();
        let mut missing = BTreeSet::new();
        for args in chart.renders {
            let objects = render(root, &helm, chart, args)?;
            let (g, m) = grants_for(&objects, chart.namespace, chart.service_account);
            grants.extend(g);
            missing.extend(m);
        }
        let user = format!("system:serviceaccount:*:{}", chart.service_account);
        let suffix = format!(":{}", chart.service_account);
        let used: Vec<&Used> = usage
            .iter()
            .filter(|u| u.user.starts_with("system:serviceaccount:") && u.user.ends_with(&suffix))
            .collect();
        println!("{} ({user})", chart.dir);
        if used.is_empty() {
            println!("  no test run logged a request by this ServiceAccount");
            if check {
                problems.push(format!("{}: no usage logged", chart.dir));
            }
            continue;
        }
        for role in missing {
            println!("  bound to {role}, which the chart does not render (not checked)");
        }
        let findings = compare(&grants, &used);
        println!("  granted and exercised ({}):", findings.used.len());
        for k in &findings.used {
            println!("    {k}");
        }
        println!("  granted, never exercised ({}):", findings.unused.len());
        for k in &findings.unused {
            match NOT_EXERCISED
                .iter()
                .find(|(dir, grant, _)| *dir == chart.dir && glob(grant, k))
            {
                Some((_, _, why)) => println!("    {k}  (kept: {why})"),
                None => {
                    println!("    {k}  ← unused");
                    problems.push(format!("{}: {k} is granted but never used", chart.dir));
                }
            }
        }
        if !findings.ungranted.is_empty() {
            println!(
                "  exercised without a grant ({}):",
                findings.ungranted.len()
            );
            for k in &findings.ungranted {
                println!("    {k}  ← a real cluster answers 403");
                problems.push(format!("{}: {k} is used but not granted", chart.dir));
            }
        }
    }
    if check && !problems.is_empty() {
        bail!(
            "the charts' RBAC does not match what the tests exercised:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Clears the usage logs before a test run (stale logs would hide a rule that went unused).
pub fn clear(root: &Path) {
    let _ = std::fs::remove_dir_all(crate::target_dir(root).join("rbac-usage"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn used(verb: &str, group: &str, resource: &str, sub: &str) -> Used {
        Used {
            user: "system:serviceaccount:ns:sa".into(),
            rbac: false,
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
        }
    }

    fn objects() -> Vec<Value> {
        vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "c"}, "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                {"apiGroups": ["bitnami.com"], "resources": ["sealedsecrets/status"], "verbs": ["update"]},
            ]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "c"},
                "roleRef": {"kind": "ClusterRole", "name": "c"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"kind": "Role", "metadata": {"name": "other"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
            ]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "other"},
                "roleRef": {"kind": "Role", "name": "other"},
                "subjects": [{"kind": "ServiceAccount", "name": "someone-else", "namespace": "ns"}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "proxier"}, "rules": [
                {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
            ]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "proxier"},
                "roleRef": {"kind": "ClusterRole", "name": "proxier"},
                "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "gone"},
                "roleRef": {"kind": "Role", "name": "not-rendered"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
        ]
    }

    #[test]
    fn only_the_service_accounts_bindings_count() {
        let (grants, missing) = grants_for(&objects(), "ns", "sa");
        let keys: Vec<String> = grants.iter().map(Grant::key).collect();
        assert_eq!(
            keys,
            [
                "get secrets",
                "get services/proxy",
                "list secrets",
                "update sealedsecrets.bitnami.com/status"
            ]
        );
        assert_eq!(missing, ["Role not-rendered"]);
    }

    #[test]
    fn unused_and_ungranted_permissions_are_found() {
        let (grants, _) = grants_for(&objects(), "ns", "sa");
        let a = used("get", "", "secrets", "");
        let b = used("watch", "", "secrets", "");
        let c = used("update", "bitnami.com", "sealedsecrets", "");
        let findings = compare(&grants, &[&a, &c]);
        assert_eq!(findings.used, ["get secrets"]);
        assert_eq!(
            findings.unused,
            [
                "get services/proxy",
                "list secrets",
                "update sealedsecrets.bitnami.com/status"
            ]
        );
        let findings = compare(&grants, &[&a, &b, &c]);
        // the main resource is not its status subresource, and the reverse
        assert_eq!(
            findings.ungranted,
            ["update sealedsecrets.bitnami.com", "watch secrets"]
        );
        // a watch exercised uses its list grant too
        let watch = used("watch", "", "secrets", "");
        assert!(
            compare(&grants, &[&watch])
                .used
                .contains(&"list secrets".to_string())
        );
        // in a cluster that enforced RBAC the test itself proved the grant
        let enforced = Used {
            rbac: true,
            ..b.clone()
        };
        assert!(compare(&grants, &[&enforced]).ungranted.is_empty());
    }

    #[test]
    fn justifications_match_by_glob() {
        assert!(glob("get *.generators.x", "get passwords.generators.x"));
        assert!(glob(
            "update *.x/finalizers",
            "update pushsecrets.x/finalizers"
        ));
        assert!(!glob("update *.x/finalizers", "update pushsecrets.x"));
        assert!(glob("get secrets", "get secrets"));
        assert!(!glob("get secrets", "get secrets/status"));
        assert!(glob("*", "anything"));
    }

    #[test]
    fn wildcards_cover_what_they_name() {
        let grant = |verb: &str, group: &str, resource: &str| Grant {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        };
        let status = used("update", "bitnami.com", "sealedsecrets", "status");
        assert!(grant("*", "bitnami.com", "sealedsecrets/status").covers(&status));
        assert!(grant("update", "*", "*").covers(&status));
        assert!(grant("update", "bitnami.com", "*/status").covers(&status));
        assert!(grant("update", "bitnami.com", "sealedsecrets/*").covers(&status));
        assert!(!grant("update", "bitnami.com", "sealedsecrets").covers(&status));
        assert!(!grant("update", "", "sealedsecrets/status").covers(&status));
    }
}
