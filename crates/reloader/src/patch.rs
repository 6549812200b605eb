//! The patch that writes a workload's updates: a strategic merge patch of its pod template
//! (one patch for every source that changed, so one rollout), as upstream writes it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::annotations::{APPLIED_HASHES, LAST_RELOADED_FROM};
use crate::hash::env_var_name;
use crate::plan::{Strategy, Update, applied_key};
use crate::workloads::Workload;

/// Upstream's `last-reloaded-from` value: fields in upstream's order.
pub fn last_reloaded_from(w: &Workload, u: &Update, observed_at: i64) -> String {
    let container = w
        .spec
        .containers
        .get(u.container)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    // serde_json keeps insertion order only with preserve_order; write the object by hand
    format!(
        "{{\"type\":{},\"name\":{},\"namespace\":{},\"hash\":{},\"containerRefs\":[{}],\"observedAt\":{}}}",
        json!(u.kind.upper()),
        json!(u.name),
        json!(w.key.namespace),
        json!(u.hash.clone().unwrap_or_default()),
        json!(container),
        observed_at
    )
}

/// The [`APPLIED_HASHES`] value after `updates`: source → hash as JSON (a source whose update
/// has no hash, a deleted one, drops out).
pub fn applied_record(w: &Workload, updates: &[Update]) -> String {
    let mut applied = w.applied_hashes();
    for u in updates {
        let key = applied_key(u.kind, &u.name);
        match &u.hash {
            Some(h) => applied.insert(key, h.clone()),
            None => applied.remove(&key),
        };
    }
    serde_json::to_string(&applied).unwrap_or_default()
}

/// The merge patch that restarts an Argo Rollout with `rollout-strategy: restart`:
/// `spec.restartAt` (upstream's patch) and the applied hashes on its metadata, so a restart of
/// the reloader does not restart the Rollout again (upstream's does, #1089).
pub fn restart_patch(w: &Workload, updates: &[Update], now_rfc3339: &str) -> Value {
    json!({
        "metadata": {"annotations": {APPLIED_HASHES: applied_record(w, updates)}},
        "spec": {"restartAt": now_rfc3339},
    })
}

/// The annotation `kubectl create job --from` and upstream put on a Job made from a CronJob.
pub const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";

/// Upstream's reload of a CronJob in run-now mode: a Job made now from the CronJob's job
/// template with the updates applied, named `<cronjob>-<random>`, owned by the CronJob.
/// `None` when the object has no job template.
pub fn job_from_cronjob(
    cron: &Value,
    w: &Workload,
    updates: &[Update],
    strategy: Strategy,
    observed_at: i64,
) -> Option<Value> {
    let mut obj = cron.clone();
    json_patch::merge(&mut obj, &merge_patch(w, updates, strategy, observed_at));
    let template = obj.pointer("/spec/jobTemplate")?;
    let labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or_else(|| json!({}));
    annotations[INSTANTIATE] = json!("manual");
    Some(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": format!("{}-", w.key.name),
            "namespace": w.key.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": w.key.name,
                "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// The labels the Job controller adds to a Job and its template, tied to the old Job's uid.
const JOB_CONTROLLER_LABELS: [&str; 4] = [
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "job-name",
];

/// Upstream's reload of a Job (whose template is immutable): the same Job with the updates
/// applied, to be created again after the old one is deleted. Server-set fields, the status,
/// the generated selector and the controller's uid labels are dropped.
pub fn recreated_job(
    job: &Value,
    w: &Workload,
    updates: &[Update],
    strategy: Strategy,
    observed_at: i64,
) -> Value {
    let mut obj = job.clone();
    json_patch::merge(&mut obj, &merge_patch(w, updates, strategy, observed_at));
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
        ] {
            meta.remove(field);
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("selector");
    }
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(labels) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
            for l in JOB_CONTROLLER_LABELS {
                labels.remove(l);
            }
        }
    }
    obj
}

/// The strategic merge patch for `updates` (non-empty), wrapped at the kind's template path.
pub fn strategic_patch(
    w: &Workload,
    updates: &[Update],
    strategy: Strategy,
    observed_at: i64,
) -> Value {
    let mut patch = Map::new();
    let template = match strategy {
        Strategy::EnvVars => {
            let mut by_container: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
            for u in updates {
                let name = env_var_name(&u.name, u.kind);
                let entry = match &u.hash {
                    Some(h) => json!({"name": name, "value": h}),
                    None => json!({"name": name, "$patch": "delete"}),
                };
                by_container.entry(u.container).or_default().push(entry);
            }
            let containers: Vec<Value> = by_container
                .into_iter()
                .filter_map(|(i, env)| {
                    let name = &w.spec.containers.get(i)?.name;
                    Some(json!({"name": name, "env": env}))
                })
                .collect();
            json!({"spec": {"containers": containers}})
        }
        Strategy::Annotations => {
            patch.insert(
                "metadata".into(),
                json!({"annotations": {APPLIED_HASHES: applied_record(w, updates)}}),
            );
            let last = updates
                .last()
                .map(|u| last_reloaded_from(w, u, observed_at));
            json!({"metadata": {"annotations": {LAST_RELOADED_FROM: last}}})
        }
    };
    // wrap at the template pointer: /spec/template or /spec/jobTemplate/spec/template
    let mut wrapped = template;
    for segment in w
        .key
        .kind
        .template_pointer()
        .rsplit('/')
        .filter(|s| !s.is_empty())
    {
        wrapped = json!({ segment: wrapped });
    }
    if let Value::Object(outer) = wrapped {
        for (k, v) in outer {
            patch.insert(k, v);
        }
    }
    Value::Object(patch)
}

/// A JSON merge patch for kinds without strategic merge (custom resources such as Argo
/// Rollouts): the annotations as in [`strategic_patch`], or the whole container list with the
/// variables set, since a merge patch replaces lists.
pub fn merge_patch(
    w: &Workload,
    updates: &[Update],
    strategy: Strategy,
    observed_at: i64,
) -> Value {
    if strategy == Strategy::Annotations {
        return strategic_patch(w, updates, strategy, observed_at);
    }
    let mut containers = w.spec.containers.clone();
    for u in updates {
        let Some(c) = containers.get_mut(u.container) else {
            continue;
        };
        let name = env_var_name(&u.name, u.kind);
        let env = c.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != name || u.hash.is_some());
        match (env.iter_mut().find(|e| e.name == name), &u.hash) {
            (Some(e), Some(h)) => e.value = Some(h.clone()),
            (None, Some(h)) => env.push(k8s_openapi::api::core::v1::EnvVar {
                name,
                value: Some(h.clone()),
                value_from: None,
            }),
            _ => {}
        }
    }
    let mut template = json!({"spec": {"containers": containers}});
    for segment in w
        .key
        .kind
        .template_pointer()
        .rsplit('/')
        .filter(|s| !s.is_empty())
    {
        template = json!({ segment: template });
    }
    template
}

/// Adds the pause of `pause-period` to a Deployment's reload patch: `spec.paused` and the
/// `paused-at` annotation, unless the Deployment is already paused (by Reloader, whose window
/// then takes this change too, or by hand, which Reloader leaves alone).
pub fn add_pause(patch: &mut Value, w: &Workload, paused_at_key: &str, now: &str) {
    if w.paused {
        return;
    }
    if let Value::Object(p) = patch {
        let spec = p.entry("spec").or_insert_with(|| json!({}));
        spec["paused"] = json!(true);
        let meta = p.entry("metadata").or_insert_with(|| json!({}));
        if meta.get("annotations").is_none() {
            meta["annotations"] = json!({});
        }
        meta["annotations"][paused_at_key] = json!(now);
    }
}

/// The patch that ends a `pause-period`.
pub fn resume_patch(paused_at_key: &str) -> Value {
    json!({"spec": {"paused": false}, "metadata": {"annotations": {paused_at_key: null}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Keys;
    use crate::hash::SourceKind;
    use crate::workloads::WorkloadKind;
    use kube::api::DynamicObject;

    fn workload(kind: WorkloadKind, obj: Value) -> Workload {
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        Workload::from_object(kind, &obj, &Keys::default()).unwrap()
    }

    fn update(name: &str, container: usize, hash: Option<&str>) -> Update {
        Update {
            kind: SourceKind::Secret,
            name: name.into(),
            container,
            hash: hash.map(str::to_string),
        }
    }

    #[test]
    fn a_restarted_rollout_records_its_hashes_and_keeps_its_template() {
        let w = workload(
            WorkloadKind::Rollout,
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "r", "namespace": "ns", "annotations": {
                    "reloader.stakater.com/rollout-strategy": "restart",
                    APPLIED_HASHES: "{\"secret/old\":\"o\",\"secret/db\":\"h0\"}"}},
                "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}),
        );
        assert!(w.restart_only && w.records_in_metadata(false));
        let p = restart_patch(
            &w,
            &[update("db", 0, Some("h1")), update("old", 0, None)],
            "2026-12-03T10:00:00Z",
        );
        assert_eq!(
            p,
            json!({"metadata": {"annotations": {APPLIED_HASHES: "{\"secret/db\":\"h1\"}"}},
                   "spec": {"restartAt": "2026-12-03T10:00:00Z"}})
        );
    }

    #[test]
    fn a_job_made_now_from_a_cronjob_carries_the_update_and_its_owner() {
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1"},
            "spec": {"schedule": "0 1 * * *", "suspend": true, "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "task", "image": "busybox"}]}}}}}});
        let w = workload(WorkloadKind::CronJob, cron.clone());
        assert!(w.records_in_metadata(true) && !w.records_in_metadata(false));
        let Some(job) = job_from_cronjob(
            &cron,
            &w,
            &[update("db", 0, Some("h1"))],
            Strategy::EnvVars,
            0,
        ) else {
            panic!("a job template is there")
        };
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["generateName"], "nightly-");
        assert_eq!(job["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(job["metadata"]["annotations"][INSTANTIATE], "manual");
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(job["spec"]["backoffLimit"], 2);
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"],
            json!([{"name": "task", "image": "busybox", "env": [{"name": "STAKATER_DB_SECRET", "value": "h1"}]}])
        );
    }

    #[test]
    fn a_recreated_job_loses_what_the_server_and_job_controller_set() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "m", "job-name": "migrate", "controller-uid": "u-1"}},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
                "template": {"metadata": {"labels": {"app": "m", "batch.kubernetes.io/controller-uid": "u-1",
                    "batch.kubernetes.io/job-name": "migrate", "controller-uid": "u-1", "job-name": "migrate"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x"}]}}},
            "status": {"succeeded": 1}});
        let w = workload(WorkloadKind::Job, job.clone());
        let out = recreated_job(
            &job,
            &w,
            &[update("db", 0, Some("h1"))],
            Strategy::EnvVars,
            0,
        );
        assert_eq!(
            out,
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "migrate", "namespace": "ns", "labels": {"app": "m"}},
                "spec": {"template": {"metadata": {"labels": {"app": "m"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x",
                        "env": [{"name": "STAKATER_DB_SECRET", "value": "h1"}]}]}}}})
        );
    }

    #[test]
    fn env_vars_patch_one_rollout_for_several_sources() {
        let w = workload(
            WorkloadKind::Deployment,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"template": {"spec": {"containers": [{"name": "app"}, {"name": "side"}]}}}}),
        );
        let p = strategic_patch(
            &w,
            &[
                update("db", 0, Some("h1")),
                update("tls.crt", 1, Some("h2")),
                update("old", 0, None),
            ],
            Strategy::EnvVars,
            0,
        );
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "STAKATER_DB_SECRET", "value": "h1"},
                                        {"name": "STAKATER_OLD_SECRET", "$patch": "delete"}]},
                {"name": "side", "env": [{"name": "STAKATER_TLS_CRT_SECRET", "value": "h2"}]}
            ]}}}})
        );
    }

    #[test]
    fn annotations_patch_of_a_cronjob_records_every_hash() {
        let w = workload(
            WorkloadKind::CronJob,
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": "ns", "annotations": {APPLIED_HASHES: "{\"configmap/cfg\":\"c1\"}"}},
                "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job"}]}}}}}}),
        );
        let p = strategic_patch(
            &w,
            &[update("db", 0, Some("h1"))],
            Strategy::Annotations,
            1700000000,
        );
        assert_eq!(
            p["metadata"]["annotations"][APPLIED_HASHES],
            "{\"configmap/cfg\":\"c1\",\"secret/db\":\"h1\"}"
        );
        assert_eq!(
            p["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
                [LAST_RELOADED_FROM],
            "{\"type\":\"SECRET\",\"name\":\"db\",\"namespace\":\"ns\",\"hash\":\"h1\",\"containerRefs\":[\"job\"],\"observedAt\":1700000000}"
        );
    }
}
