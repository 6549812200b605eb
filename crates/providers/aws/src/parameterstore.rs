//! `service: ParameterStore`.
//!
//! - Reads: `GetParameter` of `prefix + key` with decryption; `version` reads
//!   `name:version`. `metadataPolicy: Fetch` reads the tags (`ListTagsForResource`) as a JSON
//!   object.
//! - `find` returns raw parameter names mapped to values. A name regexp or a path alone:
//!   `GetParametersByPath` (recursive, decrypted; path `/` by default), falling back to
//!   `DescribeParameters` + `GetParameters` when the path call is denied, as upstream. Tags:
//!   `DescribeParameters` with `tag:<key>` filters (and the path), the regexp applied to the
//!   names, then `GetParameters` of the matches, 10 names a call.
//! - Push: `PutParameter` (type `String`, `StringList` or `SecureString` from the metadata's
//!   `secretType`), a new parameter tagged `managed-by: external-secrets`; an existing one is
//!   overwritten only when so tagged and its value changed. Delete removes only managed
//!   parameters.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{
    ParameterStringFilter, ParameterTier, ParameterType, ResourceTypeForTagging, Tag,
};
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
pub const METRIC_NAME: &str = "AWS/ParameterStore";
/// `GetParameters` takes at most 10 names.
const BATCH: usize = 10;

/// `data[].metadata.spec.tier` of a PushSecret.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierSpec {
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default)]
    policies: Option<serde_json::Value>,
}

/// `data[].metadata.spec` of a PushSecret for Parameter Store.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushSpec {
    #[serde(default)]
    secret_type: String,
    #[serde(default, rename = "kmsKeyID")]
    kms_key_id: String,
    #[serde(default)]
    tier: TierSpec,
    /// Upstream's choice of how a whole Secret is encoded; a pushed value here is one value.
    #[serde(default)]
    #[allow(dead_code)]
    encode_as_decoded: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

impl PushSpec {
    fn parse(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let spec: Self = push_meta::parse(metadata)?;
        match spec.secret_type.as_str() {
            "" | "String" | "StringList" | "SecureString" => {}
            other => {
                return Err(ProviderError::InvalidConfig(format!(
                    "secretType {other:?} is not one of String, StringList, SecureString"
                )));
            }
        }
        match spec.tier.type_.as_str() {
            "" | "Standard" | "Advanced" | "Intelligent-Tiering" => Ok(spec),
            other => Err(ProviderError::InvalidConfig(format!(
                "tier.type {other:?} is not one of Standard, Advanced, Intelligent-Tiering"
            ))),
        }
    }
}

/// A Parameter Store session of one store.
pub struct ParameterStoreClient {
    ssm: Client,
    session: Session,
    prefix: String,
    calls: Calls,
    referent: bool,
}

fn ssm_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| ProviderError::InvalidConfig(format!("tags: {e}")))
}

fn filter(key: String, option: &str, value: &str) -> Result<ParameterStringFilter, ProviderError> {
    ParameterStringFilter::builder()
        .key(key)
        .option(option)
        .values(value)
        .build()
        .map_err(|e| ProviderError::InvalidConfig(format!("find filter: {e}")))
}

impl ParameterStoreClient {
    pub(crate) fn new(
        session: Session,
        settings: &Settings,
        endpoints: &Endpoints,
        env: ProviderEnv,
    ) -> Self {
        let mut b = aws_sdk_ssm::config::Builder::from(&session.config);
        if let Some(url) = &endpoints.ssm {
            b = b.endpoint_url(url);
        }
        Self {
            ssm: Client::from_conf(b.build()),
            session,
            prefix: settings.prefix.clone(),
            calls: Calls {
                provider: METRIC_NAME,
                observer: env.calls,
            },
            referent: settings.referent,
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// `GetParameter` with decryption; `None` when the parameter (or version) does not exist.
    async fn get(&self, name: &str) -> Result<Option<SecretBytes>, ProviderError> {
        let out = self.calls.observe(
            "GetParameter",
            self.ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await,
        );
        match out {
            Ok(out) => Ok(Some(
                out.parameter()
                    .and_then(|p| p.value())
                    .map(SecretBytes::from)
                    .ok_or_else(|| {
                        ProviderError::Malformed(format!("parameter {name:?} has no value"))
                    })?,
            )),
            Err(e) => match from_sdk(e, "GetParameter", name) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The tags of a parameter; `None` when it does not exist.
    async fn tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let out = self.calls.observe(
            "ListTagsForResource",
            self.ssm
                .list_tags_for_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .send()
                .await,
        );
        match out {
            Ok(out) => Ok(Some(
                out.tag_list()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            )),
            Err(e) => match from_sdk(e, "ListTagsForResource", name) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// `GetParametersByPath` (recursive, decrypted), every page.
    async fn by_path(
        &self,
        path: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<SecretMap, ProviderError> {
        let mut found = SecretMap::new();
        let mut token: Option<String> = None;
        loop {
            let out = self.calls.observe(
                "GetParametersByPath",
                self.ssm
                    .get_parameters_by_path()
                    .path(path)
                    .recursive(true)
                    .with_decryption(true)
                    .max_results(10)
                    .set_next_token(token.take())
                    .send()
                    .await,
            );
            let out = out.map_err(|e| from_sdk(e, "GetParametersByPath", path))?;
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value())
                    && keep(name)
                {
                    found.insert(name.to_string(), SecretBytes::from(value));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Names from `DescribeParameters` with `filters`, every page.
    async fn describe(
        &self,
        filters: Vec<ParameterStringFilter>,
    ) -> Result<Vec<String>, ProviderError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // Upstream's call label is `DescribeParameter`.
            let out = self.calls.observe(
                "DescribeParameter",
                self.ssm
                    .describe_parameters()
                    .set_parameter_filters((!filters.is_empty()).then(|| filters.clone()))
                    .max_results(50)
                    .set_next_token(token.take())
                    .send()
                    .await,
            );
            let out = out.map_err(|e| from_sdk(e, "DescribeParameters", "*"))?;
            names.extend(
                out.parameters()
                    .iter()
                    .filter_map(|p| p.name().map(str::to_string)),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(names),
            }
        }
    }

    /// Values of `names` by `GetParameters`, `BATCH` a call.
    async fn get_many(&self, names: &[String]) -> Result<SecretMap, ProviderError> {
        let mut found = SecretMap::new();
        for chunk in names.chunks(BATCH) {
            let out = self.calls.observe(
                "GetParameters",
                self.ssm
                    .get_parameters()
                    .set_names(Some(chunk.to_vec()))
                    .with_decryption(true)
                    .send()
                    .await,
            );
            let out = out.map_err(|e| from_sdk(e, "GetParameters", &chunk.join(",")))?;
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    found.insert(name.to_string(), SecretBytes::from(value));
                }
            }
        }
        Ok(found)
    }

    async fn put(
        &self,
        name: &str,
        value: &SecretBytes,
        spec: &PushSpec,
        create: bool,
    ) -> Result<(), ProviderError> {
        let kind = match spec.secret_type.as_str() {
            "" => "String",
            t => t,
        };
        let mut req = self
            .ssm
            .put_parameter()
            .name(name)
            .value(String::from_utf8_lossy(value.expose()))
            .r#type(ParameterType::from(kind))
            .overwrite(!create)
            .description(if spec.description.is_empty() {
                push_meta::default_description()
            } else {
                spec.description.clone()
            });
        if kind == "SecureString" {
            req = req.key_id(if spec.kms_key_id.is_empty() {
                "alias/aws/ssm"
            } else {
                spec.kms_key_id.as_str()
            });
        }
        // Upstream applies only the Advanced tier (and with it, parameter policies).
        if spec.tier.type_ == "Advanced" {
            req = req.tier(ParameterTier::Advanced);
            if let Some(p) = &spec.tier.policies {
                req = req.policies(p.to_string());
            }
        }
        if create {
            req = req.set_tags(Some(ssm_tags(&managed_tags(&spec.tags)?)?));
        }
        self.calls
            .observe("PutParameter", req.send().await)
            .map(|_| ())
            .map_err(|e| with_key(from_sdk(e, "PutParameter", name), name))
    }

    async fn reconcile_tags(
        &self,
        name: &str,
        current: &BTreeMap<String, String>,
        wanted: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let wanted = managed_tags(wanted)?;
        let remove: Vec<String> = current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        if !remove.is_empty() {
            let out = self.calls.observe(
                "RemoveTagsFromResource",
                self.ssm
                    .remove_tags_from_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await,
            );
            out.map_err(|e| from_sdk(e, "RemoveTagsFromResource", name))?;
        }
        let changed: BTreeMap<String, String> = wanted
            .into_iter()
            .filter(|(k, v)| current.get(k) != Some(v))
            .collect();
        if !changed.is_empty() {
            let out = self.calls.observe(
                "AddTagsToResource",
                self.ssm
                    .add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tags(Some(ssm_tags(&changed)?))
                    .send()
                    .await,
            );
            out.map_err(|e| from_sdk(e, "AddTagsToResource", name))?;
        }
        Ok(())
    }
}

#[async_trait]
impl SecretsClient for ParameterStoreClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let name = self.name(&remote.key);
        if remote.fetch_metadata {
            let tags = self
                .tags(&name)
                .await?
                .ok_or_else(|| ProviderError::not_found(&name))?;
            return select(&name, tags_json(&tags), remote.property.as_deref());
        }
        let versioned = match remote.version.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{name}:{v}"),
            None => name.clone(),
        };
        let value = self
            .get(&versioned)
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
        let keep = |name: &str| regexp.as_ref().is_none_or(|r| r.is_match(name));
        if query.tags.is_empty() {
            if regexp.is_none() && path.is_none() {
                return Err(ProviderError::InvalidConfig(
                    "find needs a name regexp, a path or tags".into(),
                ));
            }
            let root = path.unwrap_or("/");
            match self.by_path(root, &keep).await {
                Err(ProviderError::PermissionDenied(_)) => {}
                other => return other,
            }
        }
        let mut filters = query
            .tags
            .iter()
            .map(|(k, v)| filter(format!("tag:{k}"), "Equals", v))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = path {
            filters.push(filter("Path".into(), "Recursive", path)?);
        }
        let names: Vec<String> = self
            .describe(filters)
            .await?
            .into_iter()
            .filter(|n| keep(n))
            .collect();
        self.get_many(&names).await
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec = PushSpec::parse(target.metadata.as_ref())?;
        let name = self.name(&target.remote_key);
        let property = target.property.as_deref();
        let Some(current) = self.get(&name).await? else {
            let first = merge_property(&name, None, property, value)?;
            return self.put(&name, &first, &spec, true).await;
        };
        let tags = self.tags(&name).await?.unwrap_or_default();
        if !is_managed(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Err(ProviderError::PermissionDenied(format!(
                "parameter {name:?} not managed by external-secrets (no tag managed-by=external-secrets): refusing to overwrite it"
            )));
        }
        let next = merge_property(&name, Some(current.expose()), property, value)?;
        if next.expose() != current.expose() {
            self.put(&name, &next, &spec, false).await?;
        }
        self.reconcile_tags(&name, &tags, &spec.tags).await
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        Ok(self.get(&self.name(&target.remote_key)).await?.is_some())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let name = self.name(&target.remote_key);
        let Some(tags) = self.tags(&name).await? else {
            return Ok(());
        };
        // Upstream leaves parameters it does not manage alone and reports success.
        if !is_managed(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            return Ok(());
        }
        let out = self.calls.observe(
            "DeleteParameter",
            self.ssm.delete_parameter().name(&name).send().await,
        );
        match out {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk(e, "DeleteParameter", &name) {
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
