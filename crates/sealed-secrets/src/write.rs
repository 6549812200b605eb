//! Writing the unsealed Secret: create, server-side apply or update, as
//! [`plan_write`](crate::ownership::plan_write) decides.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::FIELD_MANAGER;
use crate::error::Error;
use crate::ownership::{Ownership, Write, ownership, plan_write};

/// Writes `desired` over `existing` and returns the Secret's resourceVersion afterwards.
/// `known_absent`: a synced cache says there is no Secret, so it is created (never applied over
/// something the cache has not seen yet); if one appeared meanwhile, it is read and the usual
/// ownership rules decide.
pub async fn write_secret(
    api: &Api<Secret>,
    existing: Option<Secret>,
    desired: Secret,
    uid: &str,
    known_absent: bool,
) -> Result<Option<String>, Error> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let mut existing = existing;
    if existing.is_none() && known_absent {
        match api.create(&post_params(), &desired).await {
            Ok(created) => return Ok(created.metadata.resource_version),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                existing = api.get_opt(&name).await.map_err(Error::Update)?;
            }
            Err(e) => return Err(write_error(e, &name)),
        }
    }
    let mode = ownership(existing.as_ref().map(|s| &s.metadata), uid);
    if mode == Ownership::Foreign {
        return Err(Error::Unmanaged(name));
    }
    let current = existing
        .as_ref()
        .and_then(|s| s.metadata.resource_version.clone());
    match plan_write(existing.as_ref(), desired, mode) {
        None => Ok(current),
        Some(Write::Apply(secret)) => {
            let mut body = serde_json::to_value(&secret)
                .map_err(|e| Error::Update(kube::Error::SerdeError(e)))?;
            body["apiVersion"] = json!("v1");
            body["kind"] = json!("Secret");
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let written = api
                .patch(&name, &params, &Patch::Apply(body))
                .await
                .map_err(|e| write_error(e, &name))?;
            Ok(written.metadata.resource_version)
        }
        Some(Write::Update(secret)) => {
            let written = api
                .replace(&name, &post_params(), &secret)
                .await
                .map_err(|e| write_error(e, &name))?;
            Ok(written.metadata.resource_version)
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn write_error(e: kube::Error, name: &str) -> Error {
    match e {
        kube::Error::Api(s) if s.message.contains("field is immutable") => {
            Error::Immutable(name.to_string())
        }
        e => Error::Update(e),
    }
}
