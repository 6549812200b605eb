//! `service: SecretsManager`.
//!
//! - Reads: `GetSecretValue` of `prefix + key`; `version` `uuid/<id>` selects a VersionId,
//!   anything else a stage (default `AWSCURRENT`). The value is `SecretString`, else
//!   `SecretBinary`. `metadataPolicy: Fetch` reads the tags (`DescribeSecret`) as a JSON object.
//! - `find` returns raw secret names (no prefix applied, as upstream) mapped to values.
//!   Without tags: `BatchGetSecretValue` with a name filter (`path`) and the regexp applied to
//!   the answers when there is no path but a regexp, `ListSecrets` then `BatchGetSecretValue`
//!   of the matches, 20 names a call. With tags: `ListSecrets` with tag filters, the tags
//!   checked exactly on the answers (AWS's tag-key/tag-value filters match keys and values
//!   independently), then `BatchGetSecretValue` of the matches.
//! - Push: `DescribeSecret`; a missing secret is created (`CreateSecret`) tagged
//!   `managed-by: external-secrets`; an existing one without that tag is refused; otherwise the
//!   tags, replica regions and resource policy from the metadata are reconciled (modules
//!   `replication`, `resource_policy`) and
//!   `PutSecretValue` writes only a changed value. Delete removes only managed secrets (their
//!   replicas first; `forceDeleteWithoutRecovery`, `recoveryWindowInDays`).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use serde::Deserialize;
use strongroom_provider_api::{
    FindQuery, ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes, SecretMap,
    SecretsClient, Validation,
};

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;

use crate::auth::Session;
use crate::client::Common;
use crate::config::{Endpoints, Settings};
use crate::error::{found, from_code, next_page};
use crate::push_meta::{self, is_managed, managed_tags, refuse_unmanaged, tag_changes};
use crate::replication;
use crate::resource_policy::{self, PolicySource, ResourcePolicySpec};
use crate::value::{merge_property, missing, select, tags_json};

/// The `provider` label of this service's calls.
pub const METRIC_NAME: &str = "AWS/SecretsManager";
/// The version stage read when none is asked for.
const CURRENT: &str = "AWSCURRENT";
/// `BatchGetSecretValue` takes at most 20 secret ids.
const BATCH: usize = 20;
/// The ClientRequestToken of a created secret's first version (upstream's).
const INITIAL_VERSION: &str = "00000000-0000-0000-0000-000000000001";

/// `data[].metadata.spec` of a PushSecret for Secrets Manager.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushSpec {
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
    /// `binary` (default) or `string`.
    #[serde(default)]
    secret_push_format: String,
    #[serde(default)]
    kms_key_id: String,
    /// The secret's resource policy, from a ConfigMap or Secret.
    #[serde(default)]
    resource_policy: Option<ResourcePolicySpec>,
    /// Regions to replicate to; `None` leaves an existing secret's replicas alone.
    #[serde(default)]
    replication_locations: Option<Vec<String>>,
}

impl PushSpec {
    fn parse(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let spec: Self = push_meta::parse(metadata)?;
        // A user `managed-by` tag is refused before anything is sent.
        managed_tags(&spec.tags)?;
        match spec.secret_push_format.as_str() {
            "" | "binary" | "string" => Ok(spec),
            other => Err(ProviderError::InvalidConfig(format!(
                "invalid secret push format: {other:?} (binary or string)"
            ))),
        }
    }

    fn as_string(&self) -> bool {
        self.secret_push_format == "string"
    }
}

/// A Secrets Manager session of one store.
pub struct SecretsManagerClient {
    sm: Client,
    c: Common,
    force_delete: bool,
    recovery_window: Option<i64>,
    policies: PolicySource,
}

fn value_of(string: Option<&str>, binary: Option<&Blob>) -> Option<SecretBytes> {
    binary
        .map(|b| SecretBytes::new(b.as_ref().to_vec()))
        .or_else(|| string.map(SecretBytes::from))
}

impl SecretsManagerClient {
    pub(crate) fn new(
        session: Session,
        settings: &Settings,
        endpoints: &Endpoints,
        env: ProviderEnv,
        policy_namespace: Option<String>,
    ) -> Self {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(&session.config);
        b.set_endpoint_url(endpoints.secrets_manager.clone());
        let policies = PolicySource {
            resolver: env.credentials.clone(),
            namespace: policy_namespace,
        };
        Self {
            policies,
            sm: Client::from_conf(b.build()),
            c: Common::new(session, settings, METRIC_NAME, env),
            force_delete: settings.force_delete_without_recovery,
            recovery_window: settings.recovery_window_in_days,
        }
    }

    /// `GetSecretValue`; `None` when the secret (or version) does not exist.
    async fn get_value(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<SecretBytes>, ProviderError> {
        let mut req = self.sm.get_secret_value().secret_id(name);
        req = match version.filter(|v| !v.is_empty()) {
            Some(v) => match v.strip_prefix("uuid/") {
                Some(id) => req.version_id(id),
                None => req.version_stage(v),
            },
            None => req.version_stage(CURRENT),
        };
        let Some(out) = found(self.c.calls.sdk("GetSecretValue", name, req.send().await))? else {
            return Ok(None);
        };
        value_of(out.secret_string(), out.secret_binary())
            .map(Some)
            .ok_or_else(|| {
                ProviderError::Malformed(format!(
                    "secret {name:?} has neither a string nor a binary value"
                ))
            })
    }

    /// `DescribeSecret`; `None` when the secret does not exist.
    async fn describe(&self, name: &str) -> Result<Option<DescribeSecretOutput>, ProviderError> {
        found(self.c.calls.sdk(
            "DescribeSecret",
            name,
            self.sm.describe_secret().secret_id(name).send().await,
        ))
    }

    /// Names of secrets matching `filters` (all pages), with their tags.
    async fn list(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, ProviderError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .sm
                .list_secrets()
                .set_filters((!filters.is_empty()).then(|| filters.to_vec()))
                .max_results(100)
                .set_next_token(token.take());
            let out = self.c.calls.sdk("ListSecrets", "*", req.send().await)?;
            for s in out.secret_list() {
                if let Some(name) = s.name() {
                    found.push((name.to_string(), tag_map(s.tags())));
                }
            }
            token = next_page(out.next_token());
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// `BatchGetSecretValue` of `names` (`BATCH` a call), or with `filters` (`BATCH` a page);
    /// answers whose name fails `keep` are dropped.
    async fn batch(
        &self,
        names: &[String],
        filters: Option<Vec<Filter>>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<SecretMap, ProviderError> {
        let mut found = SecretMap::new();
        let chunks: Vec<Option<&[String]>> = match filters {
            Some(_) => vec![None],
            None => names.chunks(BATCH).map(Some).collect(),
        };
        for chunk in chunks {
            let what = chunk.map_or_else(|| "*".to_string(), |c| c.join(","));
            let mut token: Option<String> = None;
            loop {
                let mut req = self
                    .sm
                    .batch_get_secret_value()
                    .set_secret_id_list(chunk.map(<[String]>::to_vec))
                    .set_filters(filters.clone())
                    .set_next_token(token.take());
                if filters.is_some() {
                    req = req.max_results(BATCH as i32);
                }
                let out = self
                    .c
                    .calls
                    .sdk("BatchGetSecretValue", &what, req.send().await)?;
                if let Some(err) = out
                    .errors()
                    .iter()
                    .find(|e| e.error_code() != Some("ResourceNotFoundException"))
                {
                    let id = err.secret_id().unwrap_or_default();
                    return Err(from_code(
                        err.error_code().unwrap_or_default(),
                        err.message().unwrap_or_default(),
                        &format!("BatchGetSecretValue {id:?}"),
                    ));
                }
                for s in out.secret_values() {
                    if let (Some(name), Some(v)) =
                        (s.name(), value_of(s.secret_string(), s.secret_binary()))
                        && keep(name)
                    {
                        found.insert(name.to_string(), v);
                    }
                }
                token = next_page(out.next_token());
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Sets the metadata's tags on a managed secret (upstream: only when the metadata names
    /// tags; `managed-by` is kept).
    async fn reconcile_tags(
        &self,
        name: &str,
        current: &BTreeMap<String, String>,
        wanted: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        if wanted.is_empty() {
            return Ok(());
        }
        let (remove, changed) = tag_changes(current, wanted)?;
        if !remove.is_empty() {
            let req = self
                .sm
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(remove));
            self.c.calls.sdk("UntagResource", name, req.send().await)?;
        }
        if !changed.is_empty() {
            let req = self
                .sm
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(sm_tags(&changed)));
            self.c.calls.sdk("TagResource", name, req.send().await)?;
        }
        Ok(())
    }
}

fn sm_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn name_filter(path: &str) -> Filter {
    Filter::builder()
        .key(FilterNameStringType::Name)
        .values(path)
        .build()
}

fn tag_filters(tags: &BTreeMap<String, String>) -> Vec<Filter> {
    tags.iter()
        .flat_map(|(k, v)| {
            [
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(k)
                    .build(),
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(v)
                    .build(),
            ]
        })
        .collect()
}

#[async_trait]
impl SecretsClient for SecretsManagerClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let name = self.c.name(&remote.key);
        let value = if remote.fetch_metadata {
            self.describe(&name)
                .await?
                .map(|d| tags_json(&tag_map(d.tags())))
        } else {
            self.get_value(&name, remote.version.as_deref()).await?
        };
        let value = value.ok_or_else(|| missing(&name, remote))?;
        select(&name, value, remote.property.as_deref())
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let regexp = query.name_filter()?;
        let path = query.path.as_deref().filter(|p| !p.is_empty());
        let matches = |name: &str| {
            regexp.as_ref().is_none_or(|r| r.is_match(name))
                && path.is_none_or(|p| name.starts_with(p))
        };
        if query.tags.is_empty() {
            if let Some(path) = path {
                return self
                    .batch(&[], Some(vec![name_filter(path)]), matches)
                    .await;
            }
            if regexp.is_none() {
                return Err(ProviderError::InvalidConfig(
                    "find needs a name regexp, a path or tags".into(),
                ));
            }
        }
        let mut filters = tag_filters(&query.tags);
        if let Some(path) = path {
            filters.push(name_filter(path));
        }
        let names: Vec<String> = self
            .list(&filters)
            .await?
            .into_iter()
            .filter(|(name, tags)| matches(name) && query.tags_match(tags))
            .map(|(name, _)| name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.batch(&names, None, |_| true).await
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec = PushSpec::parse(target.metadata.as_ref())?;
        let name = self.c.name(&target.remote_key);
        let property = target.property.as_deref();
        let encode = |v: &SecretBytes| {
            if spec.as_string() {
                (None, Some(String::from_utf8_lossy(v.expose()).into_owned()))
            } else {
                (Some(Blob::new(v.expose().to_vec())), None)
            }
        };
        let Some(described) = self.describe(&name).await? else {
            let (binary, string) = encode(&merge_property(&name, None, property, value)?);
            let policy =
                resource_policy::for_new(spec.resource_policy.as_ref(), &self.policies).await?;
            let req = self
                .sm
                .create_secret()
                .name(&name)
                .client_request_token(INITIAL_VERSION)
                .description(if spec.description.is_empty() {
                    push_meta::default_description()
                } else {
                    spec.description.clone()
                })
                .set_kms_key_id((!spec.kms_key_id.is_empty()).then(|| spec.kms_key_id.clone()))
                .set_tags(Some(sm_tags(&managed_tags(&spec.tags)?)))
                .set_add_replica_regions(replication::replica_regions(
                    spec.replication_locations.as_deref(),
                    (!spec.kms_key_id.is_empty()).then_some(spec.kms_key_id.as_str()),
                ))
                .set_secret_binary(binary)
                .set_secret_string(string);
            self.c.calls.sdk("CreateSecret", &name, req.send().await)?;
            return resource_policy::apply_new(
                &self.sm,
                &self.c.calls,
                &name,
                spec.resource_policy.as_ref(),
                policy,
            )
            .await;
        };
        if described.deleted_date().is_some() {
            return Err(ProviderError::Unavailable(format!(
                "secret {name:?} is scheduled for deletion: restore it, or push again after its recovery window"
            )));
        }
        let tags = tag_map(described.tags());
        refuse_unmanaged(&tags, "secret", &name)?;
        self.reconcile_tags(&name, &tags, &spec.tags).await?;
        replication::reconcile(
            &self.sm,
            &self.c.calls,
            &name,
            &described,
            spec.replication_locations.as_deref(),
        )
        .await?;
        resource_policy::reconcile(
            &self.sm,
            &self.c.calls,
            &name,
            spec.resource_policy.as_ref(),
            &self.policies,
        )
        .await?;
        let has_versions = described
            .version_ids_to_stages()
            .is_some_and(|v| !v.is_empty());
        let current = match has_versions {
            true => self.get_value(&name, None).await?,
            false => None,
        };
        let next = merge_property(
            &name,
            current.as_ref().map(SecretBytes::expose),
            property,
            value,
        )?;
        if current
            .as_ref()
            .is_some_and(|c| c.expose() == next.expose())
        {
            return Ok(());
        }
        let token = match current {
            Some(_) => uuid::Uuid::new_v4().to_string(),
            None => INITIAL_VERSION.to_string(),
        };
        let (binary, string) = encode(&next);
        let req = self
            .sm
            .put_secret_value()
            .secret_id(&name)
            .client_request_token(token)
            .set_secret_binary(binary)
            .set_secret_string(string);
        self.c
            .calls
            .sdk("PutSecretValue", &name, req.send().await)?;
        Ok(())
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let name = self.c.name(&target.remote_key);
        Ok(self.get_value(&name, None).await?.is_some())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let name = self.c.name(&target.remote_key);
        let Some(described) = self.describe(&name).await? else {
            return Ok(());
        };
        // Upstream leaves secrets it does not manage alone and reports success.
        if described.deleted_date().is_some() || !is_managed(&tag_map(described.tags())) {
            return Ok(());
        }
        replication::remove_all(&self.sm, &self.c.calls, &name, &described).await?;
        let req = self
            .sm
            .delete_secret()
            .secret_id(&name)
            .set_force_delete_without_recovery(self.force_delete.then_some(true))
            .set_recovery_window_in_days(self.recovery_window);
        found(self.c.calls.sdk("DeleteSecret", &name, req.send().await))?;
        Ok(())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        self.c.validate().await
    }
}
