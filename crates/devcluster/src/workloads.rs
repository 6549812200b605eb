//! Just enough of the Deployment, StatefulSet and DaemonSet controllers that rollouts complete:
//! every spec change is reported as rolled out, so `kubectl rollout status` and "did the rollout
//! start" checks behave as on a cluster. No pods run.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// The status a workload settles at for its current spec, or `None` for other kinds.
pub fn simulated_status(rt: &ResourceType, obj: &Value) -> Option<Value> {
    if rt.group != "apps" {
        return None;
    }
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let revision = format!(
        "{}-{}",
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        generation
    );
    let old = obj.get("status").cloned().unwrap_or(json!({}));
    let status = match rt.plural.as_str() {
        "deployments" => {
            let mut s = json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{revision}\" has successfully progressed.")}
                ]
            });
            if replicas == 0 {
                for f in ["readyReplicas", "availableReplicas"] {
                    if let Some(m) = s.as_object_mut() {
                        m.remove(f);
                    }
                }
            }
            s
        }
        "statefulsets" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0
        }),
        "daemonsets" => json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberReady": 1,
            "numberAvailable": 1,
            "numberMisscheduled": 0
        }),
        _ => return None,
    };
    // keep condition timestamps stable when nothing changed
    if old.get("observedGeneration") == status.get("observedGeneration")
        && old.get("replicas") == status.get("replicas")
    {
        return Some(old);
    }
    Some(status)
}
