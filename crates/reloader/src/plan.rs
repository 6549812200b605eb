//! What one workload needs, computed from the caches alone: for each ConfigMap and Secret it
//! reloads on, the hash it should carry, compared with the hash it carries (its `STAKATER_*`
//! variable, or the applied-hashes annotation). Level-triggered and storm-free: a source whose
//! applied hash is known rolls the workload only when it differs; one whose applied hash is
//! unknown rolls it only when this process saw the source change (as upstream, which has no
//! record either).

use std::collections::{BTreeMap, BTreeSet};

use crate::annotations::{Decision, Keys, REFERENCED_KEYS_ONLY, decide, go_true};
use crate::hash::{DELETE_MARKER, SourceKind, env_var_name, sha1_hex};
use crate::references::{KeysUsed, usage};
use crate::workloads::Workload;

/// How a reload is written into the pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// `STAKATER_<NAME>_<TYPE>=<hash>` in one container (upstream's default).
    #[value(name = "env-vars")]
    EnvVars,
    /// The `reloader.stakater.com/last-reloaded-from` pod-template annotation.
    #[value(name = "annotations")]
    Annotations,
}

/// What the caches know about one ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Its annotations (`match`, `ignore` are read from them).
    pub annotations: BTreeMap<String, String>,
    /// The hash of its data.
    pub hash: String,
    /// A short hash per key.
    pub key_hashes: BTreeMap<String, u64>,
}

/// Why a source is being looked at now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// This process saw its data change (or it was created, with reload-on-create).
    Changed,
    /// It was deleted (with reload-on-delete); its last annotations.
    Deleted(BTreeMap<String, String>),
}

/// One source's change to write into the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The source's kind.
    pub kind: SourceKind,
    /// The source's name.
    pub name: String,
    /// The container (index) that carries it.
    pub container: usize,
    /// The hash to write; `None` removes the variable (a deleted source, env-vars strategy).
    pub hash: Option<String>,
}

/// The settings planning needs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Annotation keys.
    pub keys: Keys,
    /// Strategy.
    pub strategy: Strategy,
    /// `--auto-reload-all`.
    pub auto_reload_all: bool,
    /// Source kinds not watched (`--resources-to-ignore`).
    pub ignored: BTreeSet<SourceKind>,
    /// `--cronjob-reload=run-now`: a CronJob's reload creates a Job now (upstream's way)
    /// instead of patching its job template.
    pub run_jobs_now: bool,
}

/// The hash a workload should carry for a source: the data hash, or with
/// [`REFERENCED_KEYS_ONLY`] a hash of only the keys it reads.
fn wanted_hash(w: &Workload, source: &SourceInfo, keys: &KeysUsed) -> String {
    match keys {
        KeysUsed::Some(used) if go_true(w.annotations.get(REFERENCED_KEYS_ONLY)) => {
            let text: Vec<String> = used
                .iter()
                .map(|k| {
                    let h = source
                        .key_hashes
                        .get(k)
                        .map_or("absent".to_string(), u64::to_string);
                    format!("{k}={h}")
                })
                .collect();
            format!("keys:{}", sha1_hex(text.join(";").as_bytes()))
        }
        _ => source.hash.clone(),
    }
}

/// The hash the workload carries for a source, if it records one.
fn applied(
    w: &Workload,
    opts: &PlanOptions,
    kind: SourceKind,
    name: &str,
    container: usize,
) -> Option<String> {
    if w.records_in_metadata(opts.run_jobs_now) {
        return w.applied_hashes().get(&applied_key(kind, name)).cloned();
    }
    match opts.strategy {
        Strategy::EnvVars => w
            .env_value(container, &env_var_name(name, kind))
            .map(str::to_string),
        Strategy::Annotations => w
            .applied_hashes()
            .get(&applied_key(kind, name))
            .cloned()
            .or_else(|| w.last_reloaded_hash(kind, name)),
    }
}

/// The key of a source in the applied-hashes annotation: `secret/db`, `configmap/app`.
pub fn applied_key(kind: SourceKind, name: &str) -> String {
    format!("{}/{name}", kind.upper().to_ascii_lowercase())
}

/// The updates `w` needs. `sources` looks a source up in the workload's namespace; `names`
/// lists the sources of a kind there (for `…/reload` patterns, which need no reference);
/// `changed` holds the sources this process saw change.
pub fn plan<'a>(
    w: &Workload,
    sources: impl Fn(SourceKind, &str) -> Option<&'a SourceInfo>,
    names: impl Fn(SourceKind) -> Vec<String>,
    changed: &BTreeMap<(SourceKind, String), Trigger>,
    opts: &PlanOptions,
) -> Vec<Update> {
    let mut updates = Vec::new();
    for kind in SourceKind::ALL {
        if opts.ignored.contains(&kind) {
            continue;
        }
        let settings = w.settings(kind);
        if !settings.interested(opts.auto_reload_all) {
            continue;
        }
        let mut candidates: BTreeSet<String> = w
            .uses
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect();
        if !settings.reload.is_empty() {
            candidates.extend(
                names(kind)
                    .into_iter()
                    .filter(|n| settings.reload.iter().any(|re| re.is_match(n))),
            );
        }
        candidates.extend(
            changed
                .keys()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n.clone()),
        );
        for name in candidates {
            let trigger = changed.get(&(kind, name.clone()));
            let (annotations, source) = match (trigger, sources(kind, &name)) {
                (Some(Trigger::Deleted(a)), _) => (a.clone(), None),
                (_, Some(s)) => (s.annotations.clone(), Some(s)),
                (_, None) => continue,
            };
            let decision = decide(
                &opts.keys,
                settings,
                &name,
                &annotations,
                opts.auto_reload_all,
            );
            let used = usage(&w.spec, kind, &name);
            let container = match (decision, &used) {
                (Decision::Skip, _) | (Decision::Auto, None) => continue,
                (_, Some(u)) => u.container,
                (Decision::Named, None) if w.spec.containers.is_empty() => continue,
                (Decision::Named, None) => 0,
            };
            let now_applied = applied(w, opts, kind, &name, container);
            let update = |hash: Option<String>| Update {
                kind,
                name: name.clone(),
                container,
                hash,
            };
            match source {
                None => match opts.strategy {
                    // a deleted source: the variable goes (a rollout), if it is there
                    Strategy::EnvVars if now_applied.is_some() => updates.push(update(None)),
                    Strategy::EnvVars => {}
                    Strategy::Annotations => {
                        let marker = sha1_hex(DELETE_MARKER.as_bytes());
                        if now_applied.as_deref() != Some(marker.as_str()) {
                            updates.push(update(Some(marker)));
                        }
                    }
                },
                Some(s) => {
                    let keys = used.map_or(KeysUsed::All, |u| u.keys);
                    let want = wanted_hash(w, s, &keys);
                    let due = match &now_applied {
                        Some(have) => *have != want,
                        None => trigger.is_some(),
                    };
                    if due {
                        updates.push(update(Some(want)));
                    }
                }
            }
        }
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::WorkloadKind;
    use kube::api::DynamicObject;
    use serde_json::json;

    fn workload(annotations: serde_json::Value, containers: serde_json::Value) -> Workload {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "annotations": annotations},
            "spec": {"template": {"spec": {"containers": containers}}}
        }))
        .unwrap();
        Workload::from_object(WorkloadKind::Deployment, &obj, &Keys::default()).unwrap()
    }

    fn source(hash: &str) -> SourceInfo {
        SourceInfo {
            annotations: BTreeMap::new(),
            hash: hash.into(),
            key_hashes: [("user".to_string(), 1), ("pass".to_string(), 2)].into(),
        }
    }

    fn opts(strategy: Strategy) -> PlanOptions {
        PlanOptions {
            keys: Keys::default(),
            strategy,
            auto_reload_all: false,
            ignored: BTreeSet::new(),
            run_jobs_now: false,
        }
    }

    fn run(
        w: &Workload,
        db: &SourceInfo,
        changed: &[(&str, Trigger)],
        o: &PlanOptions,
    ) -> Vec<Update> {
        let changed: BTreeMap<(SourceKind, String), Trigger> = changed
            .iter()
            .map(|(n, t)| ((SourceKind::Secret, n.to_string()), t.clone()))
            .collect();
        plan(
            w,
            |k, n| (k == SourceKind::Secret && n == "db").then_some(db),
            |k| {
                if k == SourceKind::Secret {
                    vec!["db".into()]
                } else {
                    vec![]
                }
            },
            &changed,
            o,
        )
    }

    #[test]
    fn a_known_hash_rolls_only_when_it_differs_and_an_unknown_one_only_on_a_seen_change() {
        let uses = json!([{"name": "app", "envFrom": [{"secretRef": {"name": "db"}}]}]);
        let fresh = workload(json!({"reloader.stakater.com/auto": "true"}), uses.clone());
        let o = opts(Strategy::EnvVars);
        assert!(
            run(&fresh, &source("h1"), &[], &o).is_empty(),
            "start-up: nothing known, nothing rolls"
        );
        let u = run(&fresh, &source("h1"), &[("db", Trigger::Changed)], &o);
        assert_eq!(
            u,
            vec![Update {
                kind: SourceKind::Secret,
                name: "db".into(),
                container: 0,
                hash: Some("h1".into())
            }]
        );
        let rolled = workload(
            json!({"reloader.stakater.com/auto": "true"}),
            json!([{"name": "app", "envFrom": [{"secretRef": {"name": "db"}}],
                    "env": [{"name": "STAKATER_DB_SECRET", "value": "h1"}]}]),
        );
        assert!(
            run(&rolled, &source("h1"), &[("db", Trigger::Changed)], &o).is_empty(),
            "already applied"
        );
        let u = run(&rolled, &source("h2"), &[], &o);
        assert_eq!(u.len(), 1, "changed while down: caught up at start");
        // deleted: the variable goes
        let u = run(
            &rolled,
            &source("h1"),
            &[("db", Trigger::Deleted(BTreeMap::new()))],
            &o,
        );
        assert_eq!(u[0].hash, None);
    }

    #[test]
    fn auto_needs_a_reference_and_named_does_not() {
        let none = json!([{"name": "app"}, {"name": "side"}]);
        let auto = workload(json!({"reloader.stakater.com/auto": "true"}), none.clone());
        let o = opts(Strategy::EnvVars);
        assert!(run(&auto, &source("h1"), &[("db", Trigger::Changed)], &o).is_empty());
        let named = workload(json!({"secret.reloader.stakater.com/reload": "d.*"}), none);
        let u = run(&named, &source("h1"), &[("db", Trigger::Changed)], &o);
        assert_eq!(
            u[0].container, 0,
            "named mode without a reference: the first container"
        );
    }

    #[test]
    fn annotations_strategy_reads_its_record_and_upstreams() {
        let o = opts(Strategy::Annotations);
        let uses = json!([{"name": "app", "envFrom": [{"secretRef": {"name": "db"}}]}]);
        let recorded = workload(
            json!({"reloader.stakater.com/auto": "true", "reloader.strongroom.dev/applied-hashes": "{\"secret/db\":\"h1\"}"}),
            uses,
        );
        assert!(run(&recorded, &source("h1"), &[("db", Trigger::Changed)], &o).is_empty());
        assert_eq!(run(&recorded, &source("h2"), &[], &o).len(), 1);
        let deleted = run(
            &recorded,
            &source("h1"),
            &[("db", Trigger::Deleted(BTreeMap::new()))],
            &o,
        );
        assert_eq!(
            deleted[0].hash.as_deref(),
            Some(sha1_hex(DELETE_MARKER.as_bytes()).as_str())
        );
    }

    #[test]
    fn referenced_keys_only_ignores_other_keys() {
        let w = workload(
            json!({"reloader.stakater.com/auto": "true", "reloader.strongroom.dev/referenced-keys-only": "true"}),
            json!([{"name": "app", "env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]}]),
        );
        let o = opts(Strategy::EnvVars);
        let before = run(&w, &source("h1"), &[("db", Trigger::Changed)], &o);
        let mut other_key = source("h2");
        other_key.key_hashes.insert("pass".into(), 99);
        let after = run(&w, &other_key, &[("db", Trigger::Changed)], &o);
        assert_eq!(
            before[0].hash, after[0].hash,
            "a change of an unused key gives the same hash"
        );
        let mut used_key = source("h3");
        used_key.key_hashes.insert("user".into(), 42);
        assert_ne!(
            run(&w, &used_key, &[("db", Trigger::Changed)], &o)[0].hash,
            before[0].hash
        );
    }
}
