//! PushSecret `replicationLocations` for Secrets Manager (upstream's metadata field): the
//! regions a pushed secret is replicated to.
//!
//! - A created secret gets them in `CreateSecret` (`AddReplicaRegions`, with the metadata's
//!   `kmsKeyId` when set).
//! - An existing managed secret is brought to the list when the metadata names one: regions
//!   no longer listed are removed (`RemoveRegionsFromReplication`), new ones added
//!   (`ReplicateSecretToRegions`, with the secret's own KMS key). Without the field nothing
//!   is changed, as upstream.
//! - Before a managed secret is deleted its replicas are removed (AWS refuses to delete a
//!   secret that still has replicas; upstream's delete then fails).

use std::collections::BTreeSet;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::ReplicaRegionType;
use strongroom_provider_api::ProviderError;

use crate::error::Calls;

/// `AddReplicaRegions` for `regions` (duplicates dropped), `None` when there are none.
pub(crate) fn replica_regions(
    regions: Option<&[String]>,
    kms_key_id: Option<&str>,
) -> Option<Vec<ReplicaRegionType>> {
    let regions: BTreeSet<&str> = regions
        .into_iter()
        .flatten()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    (!regions.is_empty()).then(|| {
        regions
            .into_iter()
            .map(|r| {
                ReplicaRegionType::builder()
                    .region(r)
                    .set_kms_key_id(kms_key_id.map(str::to_string))
                    .build()
            })
            .collect()
    })
}

/// The regions `described` is replicated to now.
fn current(described: &DescribeSecretOutput) -> BTreeSet<String> {
    described
        .replication_status()
        .iter()
        .filter_map(|s| s.region().map(str::to_string))
        .collect()
}

/// Brings the replicas of secret `name` to `wanted`; nothing when `wanted` is `None`.
pub(crate) async fn reconcile(
    sm: &Client,
    calls: &Calls,
    name: &str,
    described: &DescribeSecretOutput,
    wanted: Option<&[String]>,
) -> Result<(), ProviderError> {
    let Some(wanted) = wanted else {
        return Ok(());
    };
    let wanted: BTreeSet<String> = wanted
        .iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    let have = current(described);
    let remove: Vec<String> = have.difference(&wanted).cloned().collect();
    if !remove.is_empty() {
        let req = sm
            .remove_regions_from_replication()
            .secret_id(name)
            .set_remove_replica_regions(Some(remove));
        calls.sdk("RemoveRegionsFromReplication", name, req.send().await)?;
    }
    let add: Vec<String> = wanted.difference(&have).cloned().collect();
    if let Some(add) = replica_regions(Some(&add), described.kms_key_id()) {
        let req = sm
            .replicate_secret_to_regions()
            .secret_id(name)
            .set_add_replica_regions(Some(add));
        calls.sdk("ReplicateSecretToRegions", name, req.send().await)?;
    }
    Ok(())
}

/// Removes every replica of secret `name` (before it is deleted).
pub(crate) async fn remove_all(
    sm: &Client,
    calls: &Calls,
    name: &str,
    described: &DescribeSecretOutput,
) -> Result<(), ProviderError> {
    let have = current(described);
    if have.is_empty() {
        return Ok(());
    }
    let req = sm
        .remove_regions_from_replication()
        .secret_id(name)
        .set_remove_replica_regions(Some(have.into_iter().collect()));
    calls.sdk("RemoveRegionsFromReplication", name, req.send().await)?;
    Ok(())
}
