//! The SecretStore and ClusterSecretStore reconcile: connect with the store's provider (the
//! client is kept for the ExternalSecrets that read through it), validate, and report `Ready`
//! and `capabilities` as upstream does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use strongroom_core::crd::external_secrets::{
    ClusterSecretStore, SecretStore, SecretStoreSpec, SecretStoreStatus, StoreKind,
};
use strongroom_core::duration::parse_go_duration;
use strongroom_provider_api::{ProviderError, Validation};

use crate::context::Context;
use crate::error::Error;
use crate::metrics::{Kind, Subject};
use crate::ready::{self, ReadyStatus};
use crate::store_finalizer;
use crate::stores::{ResolvedStore, StoreId};

/// The two store kinds, seen the same way.
pub trait StoreObject:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// SecretStore or ClusterSecretStore.
    const KIND: StoreKind;
    /// The spec.
    fn store_spec(&self) -> SecretStoreSpec;
    /// The status.
    fn store_status(&self) -> Option<&SecretStoreStatus>;
    /// The API of this object.
    fn api(&self, client: kube::Client) -> Api<Self>;
}

impl StoreObject for SecretStore {
    const KIND: StoreKind = StoreKind::SecretStore;
    fn store_spec(&self) -> SecretStoreSpec {
        self.spec.clone()
    }
    fn store_status(&self) -> Option<&SecretStoreStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl StoreObject for ClusterSecretStore {
    const KIND: StoreKind = StoreKind::ClusterSecretStore;
    fn store_spec(&self) -> SecretStoreSpec {
        self.spec.clone().into()
    }
    fn store_status(&self) -> Option<&SecretStoreStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
}

/// How often the store is validated again: `spec.refreshInterval` (seconds or a Go duration),
/// else `--store-requeue-interval`.
fn requeue_after(spec: &SecretStoreSpec, default: Duration) -> Duration {
    let parsed = match &spec.refresh_interval {
        Some(IntOrString::Int(s)) if *s > 0 => Some(Duration::from_secs(*s as u64)),
        Some(IntOrString::String(s)) => s
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .or_else(|| parse_go_duration(s).ok()),
        _ => None,
    };
    parsed.filter(|d| !d.is_zero()).unwrap_or(default)
}

/// The reconcile kube-runtime calls for either store kind.
pub async fn reconcile<K: StoreObject>(store: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.policy
        .observe(store.as_ref(), validate(store.as_ref(), &ctx))
        .await
}

/// The error policy kube-runtime calls for either store kind.
pub fn error_policy<K: StoreObject>(store: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.policy.on_error(store.as_ref(), err)
}

async fn validate<K: StoreObject>(store: &K, ctx: &Context) -> Result<Action, Error> {
    let start = Instant::now();
    let spec = store.store_spec();
    if !ctx.stores.serves_class(spec.controller.as_deref()) {
        return Ok(Action::await_change());
    }
    if let Some(pushes) = &ctx.pushes
        && store_finalizer::reconcile(store, pushes, ctx).await? == store_finalizer::Next::Done
    {
        return Ok(Action::await_change());
    }
    let every = requeue_after(&spec, ctx.store_requeue);
    let resolved = ResolvedStore {
        id: StoreId {
            kind: K::KIND,
            namespace: store.namespace(),
            name: store.name_any(),
            referent: None,
        },
        spec: spec.clone(),
        status: store.store_status().cloned(),
        generation: store.meta().generation.unwrap_or_default(),
    };
    let outcome = check(&resolved, ctx).await;
    let (ok, reason, message, capabilities) = match &outcome {
        Ok((Validation::Ready, caps)) => {
            (true, "Valid", "store validated".to_string(), Some(*caps))
        }
        Ok((Validation::Unknown, caps)) => (
            true,
            "ValidationUnknown",
            "could not determine validation status".to_string(),
            Some(*caps),
        ),
        Err(e) => (false, "InvalidProviderConfig", e.to_string(), None),
    };
    let was_ready = resolved.is_ready();
    match &outcome {
        Err(e) => ctx
            .policy
            .warn(store, "InvalidProviderConfig", e.to_string()),
        Ok((Validation::Unknown, _)) => {
            ctx.policy.warn(store, "ValidationUnknown", message.clone())
        }
        Ok(_) if !was_ready => ctx
            .policy
            .event(store, EventType::Normal, "Valid", message.clone()),
        Ok(_) => {}
    }
    let kind = if K::KIND == StoreKind::ClusterSecretStore {
        Kind::ClusterSecretStore
    } else {
        Kind::SecretStore
    };
    ctx.metrics.ready(kind, Subject::of(store), ok);
    let nanos = start.elapsed().as_nanos() as f64;
    ctx.metrics.reconciled(kind, Subject::of(store), ok, nanos);
    write_status(store, ctx, ok, reason, &message, capabilities).await?;
    Ok(match outcome {
        // a store that cannot work is retried with backoff-like patience, not hammered
        Err(e) if e.is_retryable() => Action::requeue(Duration::from_secs(10).min(every)),
        _ => Action::requeue(every),
    })
}

async fn check(
    store: &ResolvedStore,
    ctx: &Context,
) -> Result<(Validation, &'static str), ProviderError> {
    strongroom_core::crd::external_secrets::validate_store(&store.spec)
        .map_err(|problems| ProviderError::InvalidConfig(problems.join("; ")))?;
    let provider = ctx.stores.registry().get(&store.spec.provider)?;
    let context = store.context();
    for warning in provider.validate_store(&context)? {
        tracing::warn!(store = %store.describe(), %warning, "store warning");
    }
    let capabilities = provider.capabilities(&context).as_str();
    let client = match ctx.stores.client(store).await {
        Ok(c) => c,
        // referent authentication: the credentials live in each reader's namespace
        Err(ProviderError::InvalidConfig(m))
            if store.id.kind == StoreKind::ClusterSecretStore
                && m.contains("not read from one") =>
        {
            return Ok((Validation::Unknown, capabilities));
        }
        Err(e) => return Err(e),
    };
    let validation = ctx.stores.limited(&store.id, || client.validate()).await?;
    Ok((validation, capabilities))
}

async fn write_status<K: StoreObject>(
    store: &K,
    ctx: &Context,
    ok: bool,
    reason: &str,
    message: &str,
    capabilities: Option<&str>,
) -> Result<(), Error> {
    let mut set = Map::new();
    if let Some(c) = capabilities {
        set.insert("capabilities".into(), json!(c));
    }
    let status = ReadyStatus {
        current: serde_json::to_value(store.store_status()).unwrap_or(Value::Null),
        kept: &["capabilities"],
        set,
        ok,
        reason: Some(reason),
        message,
    };
    ready::write(
        ctx,
        &store.api(ctx.client.clone()),
        &store.name_any(),
        status,
    )
    .await
}
