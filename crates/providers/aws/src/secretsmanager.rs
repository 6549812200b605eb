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
//!   tags from the metadata are reconciled and `PutSecretValue` writes only a changed value.
//!   Delete removes only managed secrets (`forceDeleteWithoutRecovery`,
//!   `recoveryWindowInDays`).

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

use crate::auth::{self, Session};
use crate::config::{Endpoints, Settings};
use crate::error::{Calls, from_sdk, with_key};
use crate::push_meta::{self, is_managed, managed_tags};
use crate::value::{merge_property, select, tags_json};

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
    /// Not implemented: refused when set.
    #[serde(default)]
    resource_policy: Option<serde_json::Value>,
    /// Not implemented: refused when set.
    #[serde(default)]
    replication_locations: Option<Vec<String>>,
}

impl PushSpec {
    fn parse(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let spec: Self = push_meta::parse(metadata)?;
        if spec.resource_policy.is_some() || spec.replication_locations.is_some() {
            return Err(ProviderError::Unsupported(
                "push metadata resourcePolicy and replicationLocations".into(),
            ));
        }
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
    session: Session,
    prefix: String,
    calls: Calls,
    referent: bool,
    force_delete: bool,
    recovery_window: Option<i64>,
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
    ) -> Self {
        let mut b = aws_sdk_secretsmanager::config::Builder::from(&session.config);
        if let Some(url) = &endpoints.secrets_manager {
            b = b.endpoint_url(url);
        }
        Self {
            sm: Client::from_conf(b.build()),
            session,
            prefix: settings.prefix.clone(),
            calls: Calls {
                provider: METRIC_NAME,
                observer: env.calls,
            },
            referent: settings.referent,
            force_delete: settings.force_delete_without_recovery,
            recovery_window: settings.recovery_window_in_days,
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
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
        let out = self.calls.observe("GetSecretValue", req.send().await);
        match out {
            Ok(out) => Ok(Some(
                value_of(out.secret_string(), out.secret_binary()).ok_or_else(|| {
                    ProviderError::Malformed(format!(
                        "secret {name:?} has neither a string nor a binary value"
                    ))
                })?,
            )),
            Err(e) => match from_sdk(e, "GetSecretValue", name) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// `DescribeSecret`; `None` when the secret does not exist.
    async fn describe(
        &self,
        name: &str,
    ) -> Result<
        Option<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput>,
        ProviderError,
    > {
        let out = self.calls.observe(
            "DescribeSecret",
            self.sm.describe_secret().secret_id(name).send().await,
        );
        match out {
            Ok(out) => Ok(Some(out)),
            Err(e) => match from_sdk(e, "DescribeSecret", name) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Names of secrets matching `filters` (all pages), with their tags.
    async fn list(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, ProviderError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self.calls.observe(
                "ListSecrets",
                self.sm
                    .list_secrets()
                    .set_filters((!filters.is_empty()).then(|| filters.to_vec()))
                    .max_results(100)
                    .set_next_token(token.take())
                    .send()
                    .await,
            );
            let out = out.map_err(|e| from_sdk(e, "ListSecrets", "*"))?;
            for s in out.secret_list() {
                if let Some(name) = s.name() {
                    let tags = s
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect();
                    found.push((name.to_string(), tags));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Values of `names`, `BATCH` a call.
    async fn batch_get(&self, names: &[String], into: &mut SecretMap) -> Result<(), ProviderError> {
        for chunk in names.chunks(BATCH) {
            let mut token: Option<String> = None;
            loop {
                let out = self.calls.observe(
                    "BatchGetSecretValue",
                    self.sm
                        .batch_get_secret_value()
                        .set_secret_id_list(Some(chunk.to_vec()))
                        .set_next_token(token.take())
                        .send()
                        .await,
                );
                let out = out.map_err(|e| from_sdk(e, "BatchGetSecretValue", &chunk.join(",")))?;
                if let Some(err) = out
                    .errors()
                    .iter()
                    .find(|e| e.error_code() != Some("ResourceNotFoundException"))
                {
                    return Err(ProviderError::Unavailable(format!(
                        "BatchGetSecretValue {:?}: {}: {}",
                        err.secret_id().unwrap_or_default(),
                        err.error_code().unwrap_or_default(),
                        err.message().unwrap_or_default()
                    )));
                }
                for s in out.secret_values() {
                    if let (Some(name), Some(v)) =
                        (s.name(), value_of(s.secret_string(), s.secret_binary()))
                    {
                        into.insert(name.to_string(), v);
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Every secret whose name matches `filters` (server side) and `keep` (client side), by
    /// `BatchGetSecretValue` with filters.
    async fn batch_filtered(
        &self,
        filters: Vec<Filter>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<SecretMap, ProviderError> {
        let mut found = SecretMap::new();
        let mut token: Option<String> = None;
        loop {
            let out = self.calls.observe(
                "BatchGetSecretValue",
                self.sm
                    .batch_get_secret_value()
                    .set_filters(Some(filters.clone()))
                    .max_results(BATCH as i32)
                    .set_next_token(token.take())
                    .send()
                    .await,
            );
            let out = out.map_err(|e| from_sdk(e, "BatchGetSecretValue", "*"))?;
            for s in out.secret_values() {
                if let (Some(name), Some(v)) =
                    (s.name(), value_of(s.secret_string(), s.secret_binary()))
                    && keep(name)
                {
                    found.insert(name.to_string(), v);
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn put_value(
        &self,
        name: &str,
        value: &SecretBytes,
        as_string: bool,
        token: &str,
    ) -> Result<(), ProviderError> {
        let mut req = self
            .sm
            .put_secret_value()
            .secret_id(name)
            .client_request_token(token);
        req = if as_string {
            req.secret_string(String::from_utf8_lossy(value.expose()))
        } else {
            req.secret_binary(Blob::new(value.expose().to_vec()))
        };
        self.calls
            .observe("PutSecretValue", req.send().await)
            .map(|_| ())
            .map_err(|e| with_key(from_sdk(e, "PutSecretValue", name), name))
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
        let wanted = managed_tags(wanted)?;
        let remove: Vec<String> = current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        if !remove.is_empty() {
            let out = self.calls.observe(
                "UntagResource",
                self.sm
                    .untag_resource()
                    .secret_id(name)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await,
            );
            out.map_err(|e| from_sdk(e, "UntagResource", name))?;
        }
        let changed: Vec<Tag> = wanted
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !changed.is_empty() {
            let out = self.calls.observe(
                "TagResource",
                self.sm
                    .tag_resource()
                    .secret_id(name)
                    .set_tags(Some(changed))
                    .send()
                    .await,
            );
            out.map_err(|e| from_sdk(e, "TagResource", name))?;
        }
        Ok(())
    }
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
        let name = self.name(&remote.key);
        if remote.fetch_metadata {
            let described = self
                .describe(&name)
                .await?
                .ok_or_else(|| ProviderError::not_found(&name))?;
            return select(
                &name,
                tags_json(&tag_map(described.tags())),
                remote.property.as_deref(),
            );
        }
        let value = self
            .get_value(&name, remote.version.as_deref())
            .await?
            .ok_or_else(|| match remote.version.as_deref() {
                Some(v) if !v.is_empty() => {
                    ProviderError::not_found_in(&name, format!("version {v:?}"))
                }
                _ => ProviderError::not_found(&name),
            })?;
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
                return self.batch_filtered(vec![name_filter(path)], matches).await;
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
        let mut found = SecretMap::new();
        self.batch_get(&names, &mut found).await?;
        Ok(found)
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec = PushSpec::parse(target.metadata.as_ref())?;
        let name = self.name(&target.remote_key);
        let property = target.property.as_deref();
        let Some(described) = self.describe(&name).await? else {
            let tags = managed_tags(&spec.tags)?;
            let first = merge_property(&name, None, property, value)?;
            let mut req = self
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
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                ));
            req = if spec.as_string() {
                req.secret_string(String::from_utf8_lossy(first.expose()))
            } else {
                req.secret_binary(Blob::new(first.expose().to_vec()))
            };
            return self
                .calls
                .observe("CreateSecret", req.send().await)
                .map(|_| ())
                .map_err(|e| from_sdk(e, "CreateSecret", &name));
        };
        let tags = tag_map(described.tags());
        if !is_managed(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Err(ProviderError::PermissionDenied(format!(
                "secret {name:?} not managed by external-secrets (no tag managed-by=external-secrets): refusing to overwrite it"
            )));
        }
        self.reconcile_tags(&name, &tags, &spec.tags).await?;
        let current = if described
            .version_ids_to_stages()
            .is_none_or(|v| v.is_empty())
        {
            None
        } else {
            self.get_value(&name, None).await?
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
        let token = if current.is_some() {
            uuid::Uuid::new_v4().to_string()
        } else {
            INITIAL_VERSION.to_string()
        };
        self.put_value(&name, &next, spec.as_string(), &token).await
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let name = self.name(&target.remote_key);
        Ok(self.get_value(&name, None).await?.is_some())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let name = self.name(&target.remote_key);
        let Some(described) = self.describe(&name).await? else {
            return Ok(());
        };
        if described.deleted_date().is_some() {
            return Ok(());
        }
        // Upstream leaves secrets it does not manage alone and reports success.
        if !is_managed(
            described
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value()?))),
        ) {
            return Ok(());
        }
        let mut req = self.sm.delete_secret().secret_id(&name);
        if self.force_delete {
            req = req.force_delete_without_recovery(true);
        }
        if let Some(days) = self.recovery_window {
            req = req.recovery_window_in_days(days);
        }
        match self.calls.observe("DeleteSecret", req.send().await) {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk(e, "DeleteSecret", &name) {
                e if e.is_not_found() => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.referent {
            return Ok(Validation::Unknown);
        }
        auth::check(&self.session).await?;
        Ok(Validation::Ready)
    }
}
