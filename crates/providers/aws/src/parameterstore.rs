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

use crate::auth::Session;
use crate::client::Common;
use crate::config::{Endpoints, Settings};
use crate::error::{found, next_page};
use crate::push_meta::{self, is_managed, managed_tags, refuse_unmanaged, tag_changes};
use crate::value::{merge_property, missing, select, tags_json};

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
    #[serde(default, rename = "encodeAsDecoded")]
    _encode_as_decoded: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
}

impl PushSpec {
    fn parse(metadata: Option<&serde_json::Value>) -> Result<Self, ProviderError> {
        let spec: Self = push_meta::parse(metadata)?;
        // A user `managed-by` tag is refused before anything is sent.
        managed_tags(&spec.tags)?;
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
    c: Common,
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
        b.set_endpoint_url(endpoints.ssm.clone());
        Self {
            ssm: Client::from_conf(b.build()),
            c: Common::new(session, settings, METRIC_NAME, env),
        }
    }

    /// `GetParameter` with decryption; `None` when the parameter (or version) does not exist.
    async fn get(&self, name: &str) -> Result<Option<SecretBytes>, ProviderError> {
        let req = self.ssm.get_parameter().name(name).with_decryption(true);
        let Some(out) = found(self.c.calls.sdk("GetParameter", name, req.send().await))? else {
            return Ok(None);
        };
        out.parameter()
            .and_then(|p| p.value())
            .map(|v| Some(SecretBytes::from(v)))
            .ok_or_else(|| ProviderError::Malformed(format!("parameter {name:?} has no value")))
    }

    /// The tags of a parameter; `None` when it does not exist.
    async fn tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let req = self
            .ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name);
        let out = found(
            self.c
                .calls
                .sdk("ListTagsForResource", name, req.send().await),
        )?;
        Ok(out.map(|out| {
            out.tag_list()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        }))
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
            let req = self
                .ssm
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .max_results(10)
                .set_next_token(token.take());
            let out = self
                .c
                .calls
                .sdk("GetParametersByPath", path, req.send().await)?;
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value())
                    && keep(name)
                {
                    found.insert(name.to_string(), SecretBytes::from(value));
                }
            }
            token = next_page(out.next_token());
            if token.is_none() {
                return Ok(found);
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
            let req = self
                .ssm
                .describe_parameters()
                .set_parameter_filters((!filters.is_empty()).then(|| filters.clone()))
                .max_results(50)
                .set_next_token(token.take());
            // Upstream's call label is `DescribeParameter`.
            let out = self
                .c
                .calls
                .sdk("DescribeParameter", "*", req.send().await)?;
            names.extend(
                out.parameters()
                    .iter()
                    .filter_map(|p| p.name().map(str::to_string)),
            );
            token = next_page(out.next_token());
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Values of `names` by `GetParameters`, `BATCH` a call.
    async fn get_many(&self, names: &[String]) -> Result<SecretMap, ProviderError> {
        let mut found = SecretMap::new();
        for chunk in names.chunks(BATCH) {
            let req = self
                .ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true);
            let out = self
                .c
                .calls
                .sdk("GetParameters", &chunk.join(","), req.send().await)?;
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
            req = req
                .tier(ParameterTier::Advanced)
                .set_policies(spec.tier.policies.as_ref().map(|p| p.to_string()));
        }
        if create {
            req = req.set_tags(Some(ssm_tags(&managed_tags(&spec.tags)?)?));
        }
        self.c.calls.sdk("PutParameter", name, req.send().await)?;
        Ok(())
    }

    async fn reconcile_tags(
        &self,
        name: &str,
        current: &BTreeMap<String, String>,
        wanted: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let (remove, changed) = tag_changes(current, wanted)?;
        if !remove.is_empty() {
            let req = self
                .ssm
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tag_keys(Some(remove));
            self.c
                .calls
                .sdk("RemoveTagsFromResource", name, req.send().await)?;
        }
        if !changed.is_empty() {
            let req = self
                .ssm
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tags(Some(ssm_tags(&changed)?));
            self.c
                .calls
                .sdk("AddTagsToResource", name, req.send().await)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SecretsClient for ParameterStoreClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let name = self.c.name(&remote.key);
        let value = if remote.fetch_metadata {
            self.tags(&name).await?.map(|t| tags_json(&t))
        } else {
            match remote.version.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => self.get(&format!("{name}:{v}")).await?,
                None => self.get(&name).await?,
            }
        };
        let value = value.ok_or_else(|| missing(&name, remote))?;
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
            match self.by_path(path.unwrap_or("/"), &keep).await {
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
        let mut names = self.describe(filters).await?;
        names.retain(|n| keep(n));
        self.get_many(&names).await
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec = PushSpec::parse(target.metadata.as_ref())?;
        let name = self.c.name(&target.remote_key);
        let property = target.property.as_deref();
        let Some(current) = self.get(&name).await? else {
            let first = merge_property(&name, None, property, value)?;
            return self.put(&name, &first, &spec, true).await;
        };
        let tags = self.tags(&name).await?.unwrap_or_default();
        refuse_unmanaged(&tags, "parameter", &name)?;
        let next = merge_property(&name, Some(current.expose()), property, value)?;
        if next.expose() != current.expose() {
            self.put(&name, &next, &spec, false).await?;
        }
        self.reconcile_tags(&name, &tags, &spec.tags).await
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        Ok(self.get(&self.c.name(&target.remote_key)).await?.is_some())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let name = self.c.name(&target.remote_key);
        // Upstream leaves parameters it does not manage alone and reports success.
        match self.tags(&name).await? {
            Some(tags) if is_managed(&tags) => {}
            _ => return Ok(()),
        }
        let req = self.ssm.delete_parameter().name(&name);
        found(self.c.calls.sdk("DeleteParameter", &name, req.send().await))?;
        Ok(())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        self.c.validate().await
    }
}
