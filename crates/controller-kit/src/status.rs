//! Status conditions written by server-side apply under the controller's field manager, only
//! when something changed, with `lastTransitionTime` kept while the condition's status stays.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A condition as the controller wants it to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    /// Condition type, e.g. `Ready` or `Synced`.
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, if the kind uses one.
    pub reason: Option<String>,
    /// Human-readable detail; `None` leaves the field out.
    pub message: Option<String>,
}

impl DesiredCondition {
    /// A condition that is `True` or `False`.
    pub fn new(type_: &str, ok: bool) -> Self {
        Self {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: None,
            message: None,
        }
    }

    /// With a reason.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    /// With a message (an empty message leaves the field out).
    pub fn message(mut self, message: &str) -> Self {
        self.message = (!message.is_empty()).then(|| message.to_string());
        self
    }
}

/// Timestamps a controller stamps on the conditions it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamps {
    /// `lastTransitionTime` only (metav1.Condition, external-secrets).
    Transition,
    /// `lastTransitionTime` and `lastUpdateTime` (sealed-secrets).
    TransitionAndUpdate,
}

/// The condition list with `desired` merged in, or `None` when the list already says the same
/// (same status, reason and message). Other condition types are kept as they are.
pub fn merge_condition(
    current: &[Value],
    desired: &DesiredCondition,
    now: &str,
    stamps: Stamps,
) -> Option<Vec<Value>> {
    let existing = current
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(desired.type_.as_str()));
    let field = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(c) = existing
        && field(c, "status").as_deref() == Some(desired.status.as_str())
        && field(c, "reason") == desired.reason
        && field(c, "message") == desired.message
    {
        return None;
    }
    let transition = existing
        .filter(|c| field(c, "status").as_deref() == Some(desired.status.as_str()))
        .and_then(|c| field(c, "lastTransitionTime"))
        .unwrap_or_else(|| now.to_string());
    let mut condition = Map::new();
    condition.insert("type".into(), json!(desired.type_));
    condition.insert("status".into(), json!(desired.status));
    if let Some(r) = &desired.reason {
        condition.insert("reason".into(), json!(r));
    }
    if let Some(m) = &desired.message {
        condition.insert("message".into(), json!(m));
    }
    condition.insert("lastTransitionTime".into(), json!(transition));
    if stamps == Stamps::TransitionAndUpdate {
        condition.insert("lastUpdateTime".into(), json!(now));
    }
    let mut out: Vec<Value> = Vec::with_capacity(current.len() + 1);
    let mut placed = false;
    for c in current {
        if c.get("type").and_then(Value::as_str) == Some(desired.type_.as_str()) {
            if !placed {
                out.push(Value::Object(condition.clone()));
                placed = true;
            }
        } else {
            out.push(c.clone());
        }
    }
    if !placed {
        out.push(Value::Object(condition));
    }
    Some(out)
}

/// The current time as the API server writes it (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Writes `status` by server-side apply of the status subresource under `field_manager`.
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    field_manager: &str,
    status: Value,
) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    apply_status_as(
        api,
        &K::api_version(&()),
        &K::kind(&()),
        name,
        field_manager,
        status,
    )
    .await
}

/// [`apply_status`] for an `Api` of untyped objects: `api_version` and `kind` name the type.
pub async fn apply_status_as<K>(
    api: &Api<K>,
    api_version: &str,
    kind: &str,
    name: &str,
    field_manager: &str,
    status: Value,
) -> kube::Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "apiVersion": api_version,
        "kind": kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(patch),
    )
    .await
    .map(|_| ())
}

/// Sets conditions of `obj` (plus `extra` status fields such as `observedGeneration`) by
/// server-side apply, in one write and only when a condition or an extra field changed.
/// Returns whether it wrote.
pub async fn set_conditions<K>(
    api: &Api<K>,
    obj: &K,
    field_manager: &str,
    desired: &[DesiredCondition],
    extra: Map<String, Value>,
    stamps: Stamps,
) -> kube::Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
{
    let current = serde_json::to_value(obj)
        .ok()
        .and_then(|v| v.get("status").cloned())
        .unwrap_or(Value::Null);
    let Some(status) = next_status(&current, desired, extra, &now(), stamps) else {
        return Ok(false);
    };
    let name = obj.meta().name.clone().unwrap_or_default();
    apply_status(api, &name, field_manager, status).await?;
    Ok(true)
}

/// The status to apply, or `None` when `current` already has every `desired` condition and
/// every `extra` field.
pub fn next_status(
    current: &Value,
    desired: &[DesiredCondition],
    extra: Map<String, Value>,
    now: &str,
    stamps: Stamps,
) -> Option<Value> {
    let mut conditions: Vec<Value> = current
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut changed = !extra.iter().all(|(k, v)| current.get(k) == Some(v));
    for d in desired {
        if let Some(merged) = merge_condition(&conditions, d, now, stamps) {
            conditions = merged;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut status = extra;
    status.insert("conditions".into(), Value::Array(conditions));
    Some(Value::Object(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(msg: &str) -> DesiredCondition {
        DesiredCondition::new("Ready", true)
            .reason("SecretSynced")
            .message(msg)
    }

    #[test]
    fn unchanged_condition_writes_nothing() {
        let current = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
            "message": "ok", "lastTransitionTime": "2020-01-01T00:00:00Z"}], "observedGeneration": 3});
        let extra: Map<String, Value> = [("observedGeneration".to_string(), json!(3))]
            .into_iter()
            .collect();
        assert!(
            next_status(
                &current,
                &[ready("ok")],
                extra.clone(),
                "2030-01-01T00:00:00Z",
                Stamps::Transition
            )
            .is_none()
        );
        // a new generation alone is written, with the transition time kept
        let newer: Map<String, Value> = [("observedGeneration".to_string(), json!(4))]
            .into_iter()
            .collect();
        let s = next_status(
            &current,
            &[ready("ok")],
            newer,
            "2030-01-01T00:00:00Z",
            Stamps::Transition,
        )
        .unwrap();
        assert_eq!(s["observedGeneration"], 4);
        assert_eq!(
            s["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        let _ = extra;
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let current = vec![
            json!({"type": "Ready", "status": "True", "reason": "SecretSynced",
            "message": "ok", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
            json!({"type": "Other", "status": "True"}),
        ];
        let same_status = merge_condition(
            &current,
            &ready("new message"),
            "2030-01-01T00:00:00Z",
            Stamps::Transition,
        )
        .unwrap();
        assert_eq!(same_status[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(same_status[0]["message"], "new message");
        assert_eq!(same_status[1]["type"], "Other", "other conditions are kept");
        let flipped = merge_condition(
            &current,
            &DesiredCondition::new("Ready", false)
                .reason("SecretSyncedError")
                .message("boom"),
            "2030-01-01T00:00:00Z",
            Stamps::TransitionAndUpdate,
        )
        .unwrap();
        assert_eq!(flipped[0]["lastTransitionTime"], "2030-01-01T00:00:00Z");
        assert_eq!(flipped[0]["lastUpdateTime"], "2030-01-01T00:00:00Z");
        assert_eq!(flipped[0]["status"], "False");
        let added =
            merge_condition(&[], &ready(""), "2030-01-01T00:00:00Z", Stamps::Transition).unwrap();
        assert_eq!(added.len(), 1);
        assert!(
            added[0].get("message").is_none(),
            "an empty message is left out"
        );
    }
}
