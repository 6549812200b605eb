//! PushSecret `resourcePolicy` for Secrets Manager (upstream's metadata field):
//! `{blockPublicPolicy, policySourceRef: {kind: ConfigMap|Secret, name, key}}`, the policy JSON
//! read from a ConfigMap or Secret in the PushSecret's namespace.
//!
//! - A created secret gets the policy (`PutResourcePolicy`) right after `CreateSecret`.
//! - For an existing managed secret the current policy is read (`GetResourcePolicy`) and the
//!   policy put only when it differs as JSON; `resourcePolicy` without a `policySourceRef`,
//!   or an empty policy, removes it (`DeleteResourcePolicy`).
//! - Without the field the secret's policy is left alone (upstream deletes it on every push).
//!
//! The policy text never appears in an error: it may come from a Secret.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use strongroom_provider_api::{CredentialResolver, ProviderError};

use crate::error::{Calls, found};

/// `resourcePolicy` of the push metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ResourcePolicySpec {
    #[serde(default)]
    block_public_policy: Option<bool>,
    #[serde(default)]
    policy_source_ref: Option<PolicySourceRef>,
}

/// Where the policy JSON is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySourceRef {
    kind: String,
    name: String,
    key: String,
}

/// Reads policies in the PushSecret's namespace through the controller's resolver.
pub(crate) struct PolicySource {
    /// The controller's Secret and ConfigMap reader.
    pub resolver: Arc<dyn CredentialResolver>,
    /// The store's namespace (a ClusterSecretStore: the referent namespace, if any).
    pub namespace: Option<String>,
}

impl PolicySource {
    /// The policy text `r` names; an error names the object and key, never the text.
    async fn read(&self, r: &PolicySourceRef) -> Result<String, ProviderError> {
        let ns = self.namespace.as_deref().ok_or_else(|| {
            ProviderError::Unsupported(
                "resourcePolicy.policySourceRef through a ClusterSecretStore without referent authentication (the PushSecret's namespace is not known to the store)"
                    .into(),
            )
        })?;
        let text = match r.kind.as_str() {
            "ConfigMap" => self.resolver.config_map_key(ns, &r.name, &r.key).await?,
            "Secret" => {
                let bytes = self.resolver.secret_key(ns, &r.name, &r.key).await?;
                String::from_utf8(bytes.expose().to_vec()).map_err(|_| {
                    ProviderError::InvalidConfig(format!(
                        "resource policy in Secret {ns}/{} key {:?} is not UTF-8 text",
                        r.name, r.key
                    ))
                })?
            }
            other => {
                return Err(ProviderError::InvalidConfig(format!(
                    "resourcePolicy.policySourceRef.kind {other:?} is not ConfigMap or Secret"
                )));
            }
        };
        if !text.trim().is_empty() && serde_json::from_str::<serde_json::Value>(&text).is_err() {
            return Err(ProviderError::InvalidConfig(format!(
                "resource policy in {} {ns}/{} key {:?} is not JSON",
                r.kind, r.name, r.key
            )));
        }
        Ok(text)
    }
}

/// The policy `spec` asks for; `None` for none (remove it).
async fn wanted(
    spec: &ResourcePolicySpec,
    source: &PolicySource,
) -> Result<Option<String>, ProviderError> {
    match &spec.policy_source_ref {
        Some(r) => Ok(Some(source.read(r).await?).filter(|t| !t.trim().is_empty())),
        None => Ok(None),
    }
}

async fn put(
    sm: &Client,
    calls: &Calls,
    name: &str,
    policy: String,
    spec: &ResourcePolicySpec,
) -> Result<(), ProviderError> {
    let req = sm
        .put_resource_policy()
        .secret_id(name)
        .resource_policy(policy)
        .set_block_public_policy(spec.block_public_policy);
    calls.sdk("PutResourcePolicy", name, req.send().await)?;
    Ok(())
}

/// Checks the policy source of a secret about to be created (nothing is created when it
/// cannot be read) and returns the policy to put after `CreateSecret`.
pub(crate) async fn for_new(
    spec: Option<&ResourcePolicySpec>,
    source: &PolicySource,
) -> Result<Option<String>, ProviderError> {
    match spec {
        Some(spec) => wanted(spec, source).await,
        None => Ok(None),
    }
}

/// Puts `policy` on the just-created secret `name`.
pub(crate) async fn apply_new(
    sm: &Client,
    calls: &Calls,
    name: &str,
    spec: Option<&ResourcePolicySpec>,
    policy: Option<String>,
) -> Result<(), ProviderError> {
    match (spec, policy) {
        (Some(spec), Some(policy)) => put(sm, calls, name, policy, spec).await,
        _ => Ok(()),
    }
}

/// Brings the policy of existing secret `name` to what `spec` asks; nothing without a spec.
pub(crate) async fn reconcile(
    sm: &Client,
    calls: &Calls,
    name: &str,
    spec: Option<&ResourcePolicySpec>,
    source: &PolicySource,
) -> Result<(), ProviderError> {
    let Some(spec) = spec else {
        return Ok(());
    };
    let wanted = wanted(spec, source).await?;
    let current = found(calls.sdk(
        "GetResourcePolicy",
        name,
        sm.get_resource_policy().secret_id(name).send().await,
    ))?
    .and_then(|o| o.resource_policy().map(str::to_string))
    .filter(|p| !p.trim().is_empty());
    let as_json = |p: &str| serde_json::from_str::<serde_json::Value>(p).ok();
    match (current, wanted) {
        (None, None) => Ok(()),
        (Some(_), None) => {
            let req = sm.delete_resource_policy().secret_id(name);
            found(calls.sdk("DeleteResourcePolicy", name, req.send().await))?;
            Ok(())
        }
        (Some(c), Some(w)) if as_json(&c).is_some() && as_json(&c) == as_json(&w) => Ok(()),
        (_, Some(w)) => put(sm, calls, name, w, spec).await,
    }
}
