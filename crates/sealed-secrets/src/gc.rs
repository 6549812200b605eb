//! `--old-gc-behavior`: when a SealedSecret is deleted, the controller deletes the Secret of the
//! same name itself, as upstream did before ownerReferences (this covers Secrets written with
//! `skip-set-owner-references`). Unlike upstream, a Secret is deleted only when it is this
//! SealedSecret's to replace (controlled by it, or annotated `managed`): a patch-mode or foreign
//! Secret of the same name is kept.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use strongroom_controller_kit::watch::backed_off_watch;
use strongroom_core::crd::sealed_secret::SealedSecret;

use crate::ownership::{Ownership, ownership};

/// Watches SealedSecrets (metadata only) in `namespace` (or all) and deletes the Secret of each
/// deleted one that is theirs. Runs until the watch ends.
pub async fn delete_with_sealed_secrets(client: Client, namespace: Option<String>) {
    let api: Api<PartialObjectMeta<SealedSecret>> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut events = backed_off_watch(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Delete(gone)) = event {
            delete_secret_of(&client, &gone).await;
        }
    }
}

async fn delete_secret_of(client: &Client, gone: &PartialObjectMeta<SealedSecret>) {
    let ns = gone.namespace().unwrap_or_default();
    let name = gone.name_any();
    let uid = gone.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let target = format!("{ns}/{name}");
    match secrets.get_metadata_opt(&name).await {
        Ok(Some(secret)) if ownership(Some(&secret.metadata), &uid) == Ownership::Replace => {
            match secrets.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(secret = %target, "SealedSecret deleted: Secret deleted (--old-gc-behavior)")
                }
                Err(e) => {
                    tracing::warn!(secret = %target, error = %e, "could not delete the Secret of a deleted SealedSecret")
                }
            }
        }
        Ok(Some(_)) => {
            tracing::info!(secret = %target, "SealedSecret deleted: its Secret is not the SealedSecret's to delete, kept")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(secret = %target, error = %e, "could not read the Secret of a deleted SealedSecret")
        }
    }
}
