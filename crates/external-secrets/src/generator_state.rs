//! GeneratorStates (`generators.external-secrets.io/v1alpha1`): what a generator left behind
//! (a VaultDynamicSecret's lease), recorded so it is cleaned up even when the ExternalSecret is
//! deleted or the controller restarts in between. Upstream's design:
//!
//! - Each generation with state gets a GeneratorState in the ExternalSecret's namespace, owned
//!   by it (ownerReference), labelled `generators.external-secrets.io/owner-key` with the
//!   ExternalSecret and `dataFrom` entry, holding the generator manifest (`spec.resource`) and
//!   its state (`spec.state`: lease ids or token accessors, never a value), and carrying the
//!   finalizer [`FINALIZER`]. It is created before the target Secret is written.
//! - Once the Secret is written, every older state of the same entry gets
//!   `spec.garbageCollectionDeadline` = now + `--generator-gc-grace-period`; when the write
//!   fails, the new state gets the deadline now instead (its lease is never used).
//! - The GeneratorState controller ([`reconcile`]) deletes a state whose deadline passed;
//!   deleting one (also when the ExternalSecret's finalizer deletes all of its states) runs
//!   the generator's cleanup (revokes the lease) before the finalizer is removed. A cleanup that
//!   fails keeps the object and is retried, for up to 10 minutes: then the finalizer goes
//!   anyway (with a warning) so a namespace whose credentials are gone can still be deleted.
//! - After a restart, states whose deadline passed meanwhile are cleaned up when the
//!   controller lists them.
//! - A current state (no deadline) that this process did not create, after a restart, has
//!   its lease renewed from then on as if it had generated it (`generators::adopt`).
//! - Its `Ready` condition says where a state is, with upstream's reasons: `Created` (True:
//!   "GeneratorState created", then the deadline once one is set, then "Reached gc deadline")
//!   and `Error` (False: a failed cleanup or deletion, with the cause).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Map, json};
use strongroom_core::crd::external_secrets::ExternalSecret;
use strongroom_core::crd::generators::{GeneratorState, OWNER_KEY_LABEL};

use crate::context::Context;
use crate::generators::GeneratedState;
use crate::hash::created_by;
use crate::ready::{self, ReadyStatus};

/// The finalizer on every GeneratorState this controller creates (upstream's name).
pub const FINALIZER: &str = "generatorstate.externalsecrets.io/finalizer";

/// The longest label value Kubernetes accepts.
const MAX_LABEL: usize = 63;
/// How long a failed cleanup waits before it is tried again.
const RETRY_CLEANUP: Duration = Duration::from_secs(15);
/// How long a deleted state's cleanup is retried before the finalizer goes anyway.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// How long `gs` has been marked for deletion.
fn deleting_for(gs: &GeneratorState) -> Duration {
    gs.meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| Utc::now().timestamp_millis() - t.0.as_millisecond())
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}

/// A GeneratorState created in this reconcile.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its name.
    pub name: String,
    /// Its owner-key label.
    pub owner_key: String,
}

/// Why a GeneratorState could not be handled (names the object; never a value).
#[derive(Debug, thiserror::Error)]
#[error("GeneratorState {object}: {message}")]
pub struct StateError {
    object: String,
    message: String,
}

/// The owner-key label of `dataFrom` entry `at` (`spec.dataFrom[2]`) of `es`: upstream's
/// `externalsecret-<name>-<key>`, lowercase; a hash when that is longer than a label may be.
pub fn owner_key(es: &ExternalSecret, at: &str) -> String {
    let index: String = at.chars().filter(char::is_ascii_digit).collect();
    let name = es.name_any();
    let key = format!("externalsecret-{name}-{index}").to_lowercase();
    if key.len() <= MAX_LABEL {
        key
    } else {
        let ns = es.namespace().unwrap_or_default();
        created_by(&ns, &format!("{name}/{index}"))
            .chars()
            .take(MAX_LABEL)
            .collect()
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Creates a GeneratorState for each generation of this reconcile. A state that cannot be
/// recorded is cleaned up at once (its lease revoked) and the error returned.
pub async fn record(
    ctx: &Context,
    es: &ExternalSecret,
    states: &[(String, GeneratedState)],
    created: &mut Vec<Recorded>,
) -> Result<(), StateError> {
    let ns = es.namespace().unwrap_or_default();
    let api: Api<GeneratorState> = Api::namespaced(ctx.client.clone(), &ns);
    for (at, generated) in states {
        let owner_key = owner_key(es, at);
        let base: String = format!("gen-externalsecret-{}", es.name_any())
            .chars()
            .take(240)
            .collect();
        let name = format!("{base}-{}", random_suffix());
        let object = json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1",
            "kind": "GeneratorState",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": { OWNER_KEY_LABEL: owner_key },
                "finalizers": [FINALIZER],
                "ownerReferences": [{
                    "apiVersion": ExternalSecret::api_version(&()),
                    "kind": ExternalSecret::kind(&()),
                    "name": es.name_any(),
                    "uid": es.uid().unwrap_or_default(),
                }],
            },
            "spec": { "resource": generated.resource, "state": generated.state },
        });
        let made = match serde_json::from_value::<GeneratorState>(object) {
            Ok(gs) => api
                .create(&PostParams::default(), &gs)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(message) = made {
            if let Err(e) =
                crate::generators::cleanup(&ctx.stores, &ns, &generated.resource, &generated.state)
                    .await
            {
                tracing::warn!(object = %format!("{ns}/{}", es.name_any()), error = %e, "could not clean up a generator state that was not recorded");
            }
            return Err(StateError {
                object: format!("{ns}/{name}"),
                message: format!("could not create: {message}"),
            });
        }
        created.push(Recorded { name, owner_key });
    }
    Ok(())
}

/// Sets `spec.garbageCollectionDeadline` of `name`.
async fn set_deadline(
    api: &Api<GeneratorState>,
    name: &str,
    at: chrono::DateTime<Utc>,
) -> Result<(), kube::Error> {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({"spec": {"garbageCollectionDeadline": at}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// After a reconcile that created states: on success every older state of the same entries
/// is flagged for garbage collection after the grace period; on failure the new states are
/// flagged for now (their leases were never handed out).
pub async fn settle(ctx: &Context, es: &ExternalSecret, created: &[Recorded], written: bool) {
    if created.is_empty() {
        return;
    }
    let ns = es.namespace().unwrap_or_default();
    let api: Api<GeneratorState> = Api::namespaced(ctx.client.clone(), &ns);
    let now = Utc::now();
    let mut failures = Vec::new();
    if !written {
        for r in created {
            if let Err(e) = set_deadline(&api, &r.name, now).await {
                failures.push(e.to_string());
            }
        }
    } else {
        let grace = chrono::Duration::from_std(ctx.generator_gc_grace).unwrap_or_default();
        for r in created {
            let selector = format!("{OWNER_KEY_LABEL}={}", r.owner_key);
            let older = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => l.items,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            for gs in older {
                let name = gs.name_any();
                if created.iter().any(|c| c.name == name)
                    || gs.spec.garbage_collection_deadline.is_some()
                {
                    continue;
                }
                if let Err(e) = set_deadline(&api, &name, now + grace).await {
                    failures.push(e.to_string());
                }
            }
        }
    }
    if !failures.is_empty() {
        tracing::warn!(object = %format!("{ns}/{}", es.name_any()), errors = %failures.join("; "), "could not flag generator states for garbage collection");
    }
}

/// Deletes every GeneratorState `es` owns (its finalizer): each one's cleanup then runs.
pub async fn delete_owned(ctx: &Context, es: &ExternalSecret) -> Result<(), kube::Error> {
    let ns = es.namespace().unwrap_or_default();
    let uid = es.uid().unwrap_or_default();
    let api: Api<GeneratorState> = Api::namespaced(ctx.client.clone(), &ns);
    let all = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        // the GeneratorState CRD is not installed: no state was ever recorded
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    for gs in all {
        if !gs.owner_references().iter().any(|o| o.uid == uid)
            || gs.meta().deletion_timestamp.is_some()
        {
            continue;
        }
        match api.delete(&gs.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Upstream's `Ready` reason of a state that is fine.
pub const REASON_CREATED: &str = "Created";
/// Upstream's `Ready` reason of a state whose cleanup or deletion failed.
pub const REASON_ERROR: &str = "Error";

/// Sets the `Ready` condition of `gs` (only when it changes). A state deleted meanwhile, or a
/// write that fails, is only logged: the condition reports, it never blocks the cleanup.
async fn set_ready(
    ctx: &Context,
    api: &Api<GeneratorState>,
    gs: &GeneratorState,
    ok: bool,
    message: &str,
) {
    let status = ReadyStatus {
        current: serde_json::to_value(&gs.status).unwrap_or_default(),
        kept: &[],
        set: Map::new(),
        ok,
        reason: Some(if ok { REASON_CREATED } else { REASON_ERROR }),
        message,
    };
    match ready::write(ctx, api, &gs.name_any(), status).await {
        Ok(()) => {}
        Err(crate::error::Error::Kube {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 404 => {}
        Err(e) => tracing::warn!(
            object = %format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any()),
            error = %e,
            "could not set the GeneratorState's condition"
        ),
    }
}

/// The GeneratorState controller's reconcile: cleanup on deletion, deletion at the deadline,
/// and the `Ready` condition that says which.
pub async fn reconcile(gs: Arc<GeneratorState>, ctx: Arc<Context>) -> Result<Action, StateError> {
    let ns = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let object = format!("{ns}/{name}");
    let api: Api<GeneratorState> = Api::namespaced(ctx.client.clone(), &ns);
    let result = handle(&gs, &ctx, &api, &object).await;
    match &result {
        Ok((_, Some(message))) => set_ready(&ctx, &api, &gs, true, message).await,
        Ok((_, None)) => {}
        Err(e) => set_ready(&ctx, &api, &gs, false, &e.message).await,
    }
    result.map(|(action, _)| action)
}

/// One reconcile of `gs`: what to do next and the `Ready` message to set (`None`: the object
/// is gone or going, leave it).
async fn handle(
    gs: &GeneratorState,
    ctx: &Context,
    api: &Api<GeneratorState>,
    object: &str,
) -> Result<(Action, Option<String>), StateError> {
    let ns = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let fail = |message: String| StateError {
        object: object.to_string(),
        message,
    };
    if gs.meta().deletion_timestamp.is_some() {
        if !gs.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok((Action::await_change(), None));
        }
        match crate::generators::cleanup(&ctx.stores, &ns, &gs.spec.resource.0, &gs.spec.state.0)
            .await
        {
            Ok(()) => tracing::info!(object = %object, "generator state cleaned up"),
            // never hold the object (and its namespace's deletion) forever: the lease then
            // lives to its TTL
            Err(e) if deleting_for(gs) > GIVE_UP_AFTER => tracing::warn!(
                object = %object,
                error = %e,
                "giving up cleaning up the generator state; its lease expires with its TTL"
            ),
            Err(e) => return Err(fail(format!("could not cleanup generator state: {e}"))),
        }
        let rest: Vec<String> = gs
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"finalizers": rest}});
        return match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok((Action::await_change(), None)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok((Action::await_change(), None)),
            Err(e) => Err(fail(format!("could not remove the finalizer: {e}"))),
        };
    }
    let Some(deadline) = &gs.spec.garbage_collection_deadline else {
        // the current state of its entry: a lease recorded before a restart is renewed here
        // from now on, as one generated here
        let created = Some("GeneratorState created".to_string());
        return match crate::generators::adopt(
            &ctx.stores,
            &ns,
            &gs.spec.resource.0,
            &gs.spec.state.0,
        )
        .await
        {
            Ok(true) => {
                tracing::info!(object = %object, "renewing the lease of a generator state recorded before");
                Ok((Action::await_change(), created))
            }
            Ok(false) => Ok((Action::await_change(), created)),
            Err(e) => {
                tracing::warn!(object = %object, error = %e, "could not take over the renewal of a recorded lease");
                Ok((Action::requeue(RETRY_CLEANUP), created))
            }
        };
    };
    let left = deadline.0.as_millisecond() - Utc::now().timestamp_millis();
    if left > 0 {
        let at = deadline.0.strftime("%Y-%m-%dT%H:%M:%SZ");
        return Ok((
            Action::requeue(Duration::from_millis(u64::try_from(left).unwrap_or(0) + 50)),
            Some(format!(
                "GeneratorState created; garbage collection at {at}"
            )),
        ));
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok((Action::await_change(), Some("Reached gc deadline".into()))),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok((Action::await_change(), None)),
        Err(e) => Err(fail(format!("could not delete GeneratorState: {e}"))),
    }
}

/// The GeneratorState controller's error policy: log (no value) and try again.
pub fn error_policy(_: Arc<GeneratorState>, err: &StateError, _: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "generator state");
    Action::requeue(RETRY_CLEANUP)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn es(name: &str) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {}
        }))
        .unwrap()
    }

    #[test]
    fn owner_keys_are_upstreams_and_fit_a_label() {
        assert_eq!(
            owner_key(&es("DB-Creds"), "spec.dataFrom[12]"),
            "externalsecret-db-creds-12"
        );
        let long = owner_key(&es(&"a".repeat(100)), "spec.dataFrom[0]");
        assert!(long.len() <= MAX_LABEL && !long.contains('a'.to_string().repeat(60).as_str()));
        assert_ne!(long, owner_key(&es(&"a".repeat(100)), "spec.dataFrom[1]"));
    }

    #[test]
    fn a_stuck_cleanup_gives_up_after_ten_minutes() {
        let mut gs: GeneratorState = serde_json::from_value(json!({
            "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GeneratorState",
            "metadata": {"name": "g", "namespace": "team"},
            "spec": {"resource": {}, "state": {}}
        }))
        .unwrap();
        assert_eq!(deleting_for(&gs), Duration::ZERO);
        let at = (Utc::now() - chrono::Duration::minutes(11))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        gs.metadata.deletion_timestamp = serde_json::from_value(json!(at)).unwrap();
        assert!(deleting_for(&gs) > GIVE_UP_AFTER);
    }
}
