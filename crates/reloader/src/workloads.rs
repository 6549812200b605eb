//! The workload kinds, read as untyped objects (so the Argo Rollout CRD need not exist), and
//! the slim view of each workload the reloader keeps: its reload settings, its pod spec and
//! what it last applied.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::annotations::{
    APPLIED_HASHES, Keys, LAST_RELOADED_FROM, ROLLOUT_STRATEGY, WorkloadSettings,
};
use crate::hash::SourceKind;
use crate::references;

/// A kind of workload the reloader rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `batch/v1` CronJob.
    CronJob,
    /// `batch/v1` Job (its template is immutable: deleted and created again, as upstream).
    Job,
    /// `argoproj.io/v1alpha1` Rollout.
    Rollout,
}

impl WorkloadKind {
    /// Every kind, in upstream's order of evaluation.
    pub const ALL: [WorkloadKind; 6] = [
        Self::Deployment,
        Self::CronJob,
        Self::Job,
        Self::DaemonSet,
        Self::StatefulSet,
        Self::Rollout,
    ];

    /// The kind's name (`Deployment`, ...), as metric labels and events spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::DaemonSet => "DaemonSet",
            Self::StatefulSet => "StatefulSet",
            Self::CronJob => "CronJob",
            Self::Job => "Job",
            Self::Rollout => "Rollout",
        }
    }

    /// The API resource.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, plural) = match self {
            Self::Deployment => ("apps", "v1", "deployments"),
            Self::DaemonSet => ("apps", "v1", "daemonsets"),
            Self::StatefulSet => ("apps", "v1", "statefulsets"),
            Self::CronJob => ("batch", "v1", "cronjobs"),
            Self::Job => ("batch", "v1", "jobs"),
            Self::Rollout => ("argoproj.io", "v1alpha1", "rollouts"),
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.name()),
            plural,
        )
    }

    /// Where the pod template is, as a JSON pointer.
    pub fn template_pointer(self) -> &'static str {
        match self {
            Self::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }

    /// Whether a strategic merge patch works (built-in kinds; not custom resources).
    pub fn strategic_merge(self) -> bool {
        !matches!(self, Self::Rollout)
    }
}

/// What identifies a workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKey {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.name(), self.namespace, self.name)
    }
}

/// The slim view of one workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Kind, namespace, name.
    pub key: WorkloadKey,
    /// Its metadata annotations (kubectl's last-applied copy dropped).
    pub annotations: BTreeMap<String, String>,
    /// Reload settings for ConfigMaps and for Secrets.
    pub settings: [WorkloadSettings; 3],
    /// The pod spec of its template.
    pub spec: PodSpec,
    /// Its pod template's annotations.
    pub template_annotations: BTreeMap<String, String>,
    /// Every source its pod spec uses.
    pub uses: BTreeSet<(SourceKind, String)>,
    /// `spec.paused` (Deployments).
    pub paused: bool,
    /// An Argo Rollout with `rollout-strategy: restart`: rolled by `spec.restartAt`, its
    /// template untouched.
    pub restart_only: bool,
}

/// Index of `kind` in [`Workload::settings`].
pub fn settings_index(kind: SourceKind) -> usize {
    kind.index()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Workload {
    /// Reads a workload of `kind` from an untyped object; `None` (logged) when it has no pod
    /// template the reloader can read.
    pub fn from_object(kind: WorkloadKind, obj: &DynamicObject, keys: &Keys) -> Option<Self> {
        let key = WorkloadKey {
            kind,
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        };
        // a CronJob's Jobs are rolled through their CronJob, never recreated one by one
        if kind == WorkloadKind::Job
            && obj
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.controller == Some(true))
        {
            return None;
        }
        // an untyped object keeps everything but its metadata in `data`
        let Some(template) = obj.data.pointer(kind.template_pointer()) else {
            tracing::debug!(workload = %key, "no pod template: skipped");
            return None;
        };
        let spec: PodSpec = match template.get("spec").cloned().map(serde_json::from_value) {
            Some(Ok(spec)) => spec,
            Some(Err(e)) => {
                tracing::warn!(workload = %key, error = %e, "pod template does not read: skipped");
                return None;
            }
            None => return None,
        };
        let mut annotations = obj.metadata.annotations.clone().unwrap_or_default();
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        let template_annotations = string_map(template.pointer("/metadata/annotations"));
        let id = key.to_string();
        let settings = SourceKind::ALL
            .map(|k| WorkloadSettings::read(keys, k, &annotations, &template_annotations, &id));
        let uses = references::all_sources(&spec);
        let paused = obj.data.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        let restart_only = kind == WorkloadKind::Rollout
            && annotations.get(ROLLOUT_STRATEGY).map(String::as_str) == Some("restart");
        Some(Self {
            key,
            annotations,
            settings,
            spec,
            template_annotations,
            uses,
            paused,
            restart_only,
        })
    }

    /// Whether the hashes this workload has applied live in its metadata
    /// ([`APPLIED_HASHES`]) rather than in its pod template: a Rollout restarted by
    /// `restartAt`, and a CronJob whose reload runs a Job now (`run_jobs_now`) instead of
    /// patching its job template.
    pub fn records_in_metadata(&self, run_jobs_now: bool) -> bool {
        self.restart_only || (run_jobs_now && self.key.kind == WorkloadKind::CronJob)
    }

    /// The settings for sources of `kind`.
    pub fn settings(&self, kind: SourceKind) -> &WorkloadSettings {
        &self.settings[settings_index(kind)]
    }

    /// The value of env var `name` in container `index`, if set literally.
    pub fn env_value(&self, index: usize, name: &str) -> Option<&str> {
        self.spec
            .containers
            .get(index)?
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    /// The hashes this workload records per source in [`APPLIED_HASHES`].
    pub fn applied_hashes(&self) -> BTreeMap<String, String> {
        self.annotations
            .get(APPLIED_HASHES)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default()
    }

    /// The hash of `kind`/`name` in upstream's `last-reloaded-from` annotation, if that is
    /// the source it names.
    pub fn last_reloaded_hash(&self, kind: SourceKind, name: &str) -> Option<String> {
        let v: Value =
            serde_json::from_str(self.template_annotations.get(LAST_RELOADED_FROM)?).ok()?;
        (v.get("type")?.as_str()? == kind.upper() && v.get("name")?.as_str()? == name)
            .then(|| v.get("hash")?.as_str().map(str::to_string))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_deployments_and_cronjobs_as_untyped_objects() {
        let keys = Keys::default();
        let deploy: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {"template": {"metadata": {"annotations": {LAST_RELOADED_FROM:
                "{\"type\":\"SECRET\",\"name\":\"db\",\"namespace\":\"ns\",\"hash\":\"abc\",\"containerRefs\":[\"app\"],\"observedAt\":1}"}},
                "spec": {"containers": [{"name": "app", "env": [{"name": "STAKATER_DB_SECRET", "value": "h1"}],
                    "envFrom": [{"secretRef": {"name": "db"}}]}]}}}
        }))
        .unwrap();
        let w = Workload::from_object(WorkloadKind::Deployment, &deploy, &keys).unwrap();
        assert_eq!(w.key.to_string(), "Deployment ns/web");
        assert_eq!(w.env_value(0, "STAKATER_DB_SECRET"), Some("h1"));
        assert!(w.uses.contains(&(SourceKind::Secret, "db".into())));
        assert_eq!(
            w.last_reloaded_hash(SourceKind::Secret, "db").as_deref(),
            Some("abc")
        );
        assert_eq!(w.last_reloaded_hash(SourceKind::ConfigMap, "db"), None);
        let cron: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ns"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}}}
        }))
        .unwrap();
        let c = Workload::from_object(WorkloadKind::CronJob, &cron, &keys).unwrap();
        assert!(c.uses.contains(&(SourceKind::ConfigMap, "cfg".into())));
        let empty: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "namespace": "ns"}, "spec": {"workloadRef": {"name": "x"}}
        }))
        .unwrap();
        assert!(Workload::from_object(WorkloadKind::Rollout, &empty, &keys).is_none());
    }
}
