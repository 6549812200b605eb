//! `service: CertificateManager` (AWS Certificate Manager), as upstream's provider does it.
//!
//! - Reads: `remoteRef.key` is a certificate ARN (no prefix). `GetCertificate`, then — unless
//!   the export of that very certificate is cached — `DescribeCertificate` (the certificate
//!   must have been requested with export enabled), `ExportCertificate` with a random
//!   passphrase, and the private key decrypted. The value is one PEM bundle: certificate,
//!   chain, unencrypted PKCS #8 private key. The export is cached per ARN while ACM's
//!   certificate and chain stay the same (upstream caches it to save paid export calls).
//!   `dataFrom` (extract, find) is not supported.
//! - Push: the whole `kubernetes.io/tls` Secret (no `secretKey`): `tls.crt` (leaf first, then
//!   its chain) and `tls.key` are imported with `ImportCertificate`, tagged
//!   `managed-by: external-secrets` and `external-secrets-remote-key: <prefix + remoteKey>`;
//!   the certificate is found again by these tags (`GetResources` of the Resource Groups
//!   Tagging API; the ARN is cached after an import, since that API is eventually consistent)
//!   and re-imported under its ARN when its certificate or chain changed. The metadata's
//!   `tags` are kept in sync (the two reserved keys are ignored there, and restored on the
//!   certificate if they went). A certificate found by the cached ARN that no longer carries
//!   `managed-by: external-secrets` is neither re-imported nor deleted (upstream checks this
//!   before a delete only).
//! - Delete: `DeleteCertificate` of the managed certificate; a missing one is success.
//! - Every call is reported as `AWS/CertificateManager` with upstream's call names.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_acm::Client;
use aws_sdk_acm::types::{CertificateExport, Tag};
use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_smithy_types::Blob;
use serde::Deserialize;
use strongroom_provider_api::{
    ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes, SecretMap, SecretsClient,
    Validation,
};

use crate::auth::Session;
use crate::certificate_pem::{decrypt_key, fingerprint, passphrase, split_bundle};
use crate::client::Common;
use crate::config::{Endpoints, Settings};
use crate::error::{found, next_page};
use crate::push_meta::{self, EXTERNAL_SECRETS, MANAGED_BY, is_managed, refuse_unmanaged};
use crate::ttl_cache::TtlCache;

/// The `provider` label of this service's calls.
pub const METRIC_NAME: &str = "AWS/CertificateManager";
/// The tag holding the (prefixed) remote key of a pushed certificate.
const REMOTE_KEY_TAG: &str = "external-secrets-remote-key";
/// The Resource Groups Tagging API's type of ACM certificates.
const RESOURCE_TYPE: &str = "acm:certificate";
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
/// Upstream's cache lifetimes and sizes (entries are checked against ACM on every use).
const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
const ARN_CACHE_SIZE: usize = 512;
const EXPORT_CACHE_SIZE: usize = 128;

/// `data[].metadata.spec` of a PushSecret for Certificate Manager.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushSpec {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// An export of one certificate: the fingerprint of ACM's certificate and chain it was made
/// from, and the PEM bundle.
#[derive(Clone)]
struct Export {
    fingerprint: [u8; 32],
    bundle: SecretBytes,
}

/// A Certificate Manager session of one store.
pub struct CertificateManagerClient {
    acm: Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
    c: Common,
    /// `prefix + remoteKey` → ARN of the certificate pushed there.
    arns: TtlCache<String>,
    /// ARN → its last export.
    exports: TtlCache<Export>,
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

fn acm_tag(key: &str, value: &str) -> Result<Tag, ProviderError> {
    Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| invalid(format!("tags: {e}")))
}

fn acm_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter().map(|(k, v)| acm_tag(k, v)).collect()
}

/// The user's tags without the reserved keys, plus `managed-by: external-secrets` and the
/// remote key tag.
fn with_reserved(wanted: &BTreeMap<String, String>, remote_key: &str) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = wanted
        .iter()
        .filter(|(k, _)| *k != MANAGED_BY && *k != REMOTE_KEY_TAG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    all.insert(MANAGED_BY.into(), EXTERNAL_SECRETS.into());
    all.insert(REMOTE_KEY_TAG.into(), remote_key.into());
    all
}

/// The tags to remove from and to set on a certificate tagged `current` so that it carries the
/// user's `wanted` tags and the reserved ones.
fn tag_changes(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
    remote_key: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let wanted = with_reserved(wanted, remote_key);
    let remove = current
        .iter()
        .filter(|(k, _)| !wanted.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let add = wanted
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .collect();
    (remove, add)
}

/// `tls.crt` and `tls.key` of the pushed value: the whole Secret as a JSON object.
fn tls_pair(value: &SecretBytes) -> Result<(String, String), ProviderError> {
    let whole = || {
        invalid(
            "secretKey must be empty for service CertificateManager: the whole kubernetes.io/tls \
             Secret is imported (tls.crt and tls.key)",
        )
    };
    let serde_json::Value::Object(object) =
        serde_json::from_slice(value.expose()).map_err(|_| whole())?
    else {
        return Err(whole());
    };
    let get = |key: &str| match object.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid(format!(
            "the source Secret has no key {key:?} (or it is empty)"
        ))),
    };
    Ok((get(TLS_CRT)?, get(TLS_KEY)?))
}

/// A certificate to import: leaf, chain (may be empty) and private key, all PEM.
struct Bundle {
    leaf: String,
    chain: String,
    key: String,
}

impl Bundle {
    fn from_value(value: &SecretBytes) -> Result<Self, ProviderError> {
        let (crt, key) = tls_pair(value)?;
        let (leaf, chain) = split_bundle(crt.as_bytes())
            .map_err(|why| invalid(format!("{TLS_CRT} of the source Secret: {why}")))?;
        Ok(Self { leaf, chain, key })
    }

    /// The fingerprint ACM's `GetCertificate` gives for this bundle: without a chain, ACM
    /// answers the certificate itself as the chain.
    fn fingerprint(&self) -> [u8; 32] {
        let chain = if self.chain.is_empty() {
            &self.leaf
        } else {
            &self.chain
        };
        fingerprint(&self.leaf, chain)
    }
}

impl CertificateManagerClient {
    pub(crate) fn new(
        session: Session,
        settings: &Settings,
        endpoints: &Endpoints,
        env: ProviderEnv,
    ) -> Self {
        let mut b = aws_sdk_acm::config::Builder::from(&session.config);
        b.set_endpoint_url(endpoints.acm.clone());
        let mut t = aws_sdk_resourcegroupstagging::config::Builder::from(&session.config);
        t.set_endpoint_url(endpoints.tagging.clone());
        Self {
            acm: Client::from_conf(b.build()),
            tagging: aws_sdk_resourcegroupstagging::Client::from_conf(t.build()),
            c: Common::new(session, settings, METRIC_NAME, env),
            arns: TtlCache::new(CACHE_TTL, ARN_CACHE_SIZE),
            exports: TtlCache::new(CACHE_TTL, EXPORT_CACHE_SIZE),
        }
    }

    /// The ARN of the certificate pushed to `remote_key`: cached, else the managed
    /// certificates tagged with it (the lexically first if several are).
    async fn find(&self, remote_key: &str) -> Result<Option<String>, ProviderError> {
        if let Some(arn) = self.arns.get(remote_key) {
            return Ok(Some(arn));
        }
        let filters = [
            TagFilter::builder()
                .key(MANAGED_BY)
                .values(EXTERNAL_SECRETS)
                .build(),
            TagFilter::builder()
                .key(REMOTE_KEY_TAG)
                .values(remote_key)
                .build(),
        ];
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .tagging
                .get_resources()
                .resource_type_filters(RESOURCE_TYPE)
                .set_tag_filters(Some(filters.to_vec()))
                .set_pagination_token(token.take());
            let out = self
                .c
                .calls
                .sdk("GetResources", remote_key, req.send().await)?;
            arns.extend(
                out.resource_tag_mapping_list()
                    .iter()
                    .filter_map(|m| m.resource_arn())
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            );
            token = next_page(out.pagination_token());
            if token.is_none() {
                break;
            }
        }
        arns.sort();
        let first = arns.into_iter().next();
        if let Some(arn) = &first {
            self.arns.insert(remote_key, arn.clone());
        }
        Ok(first)
    }

    /// ACM's certificate and chain of `arn`; `None` when it does not exist.
    async fn certificate(&self, arn: &str) -> Result<Option<(String, String)>, ProviderError> {
        let req = self.acm.get_certificate().certificate_arn(arn);
        let out = found(self.c.calls.sdk("GetCertificate", arn, req.send().await))?;
        Ok(out.map(|o| {
            (
                o.certificate().unwrap_or_default().to_string(),
                o.certificate_chain().unwrap_or_default().to_string(),
            )
        }))
    }

    /// The tags of `arn`; `None` when it does not exist.
    async fn tags(&self, arn: &str) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let req = self.acm.list_tags_for_certificate().certificate_arn(arn);
        let out = found(
            self.c
                .calls
                .sdk("ListTagsForCertificate", arn, req.send().await),
        )?;
        Ok(out.map(|o| {
            o.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        }))
    }

    /// Makes the tags of `arn` (now `current`) the user's `wanted` tags plus the two reserved
    /// ones (a user tag with a reserved key is ignored, as upstream does).
    async fn sync_tags(
        &self,
        arn: &str,
        current: &BTreeMap<String, String>,
        wanted: &BTreeMap<String, String>,
        remote_key: &str,
    ) -> Result<(), ProviderError> {
        let (remove, add) = tag_changes(current, wanted, remote_key);
        let remove = acm_tags(&remove)?;
        let add = acm_tags(&add)?;
        if !remove.is_empty() {
            let req = self
                .acm
                .remove_tags_from_certificate()
                .certificate_arn(arn)
                .set_tags(Some(remove));
            self.c
                .calls
                .sdk("RemoveTagsFromCertificate", arn, req.send().await)?;
        }
        if !add.is_empty() {
            let req = self
                .acm
                .add_tags_to_certificate()
                .certificate_arn(arn)
                .set_tags(Some(add));
            self.c
                .calls
                .sdk("AddTagsToCertificate", arn, req.send().await)?;
        }
        Ok(())
    }

    /// `ImportCertificate`: a new certificate (tagged) without `arn`, else a re-import.
    async fn import(
        &self,
        bundle: &Bundle,
        arn: Option<&str>,
        tags: Option<Vec<Tag>>,
        remote_key: &str,
    ) -> Result<String, ProviderError> {
        let req = self
            .acm
            .import_certificate()
            .certificate(Blob::new(bundle.leaf.as_bytes()))
            .private_key(Blob::new(bundle.key.as_bytes()))
            .set_certificate_chain(
                (!bundle.chain.is_empty()).then(|| Blob::new(bundle.chain.as_bytes())),
            )
            .set_certificate_arn(arn.map(str::to_string))
            .set_tags(tags);
        let out = self
            .c
            .calls
            .sdk("ImportCertificate", remote_key, req.send().await)?;
        out.certificate_arn()
            .map(str::to_string)
            .or_else(|| arn.map(str::to_string))
            .ok_or_else(|| ProviderError::Malformed("ImportCertificate answered no ARN".into()))
    }

    async fn import_new(
        &self,
        bundle: &Bundle,
        remote_key: &str,
        wanted: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let tags = acm_tags(&with_reserved(wanted, remote_key))?;
        let arn = self.import(bundle, None, Some(tags), remote_key).await?;
        self.arns.insert(remote_key, arn);
        Ok(())
    }

    async fn reimport(
        &self,
        arn: &str,
        bundle: &Bundle,
        remote_key: &str,
        wanted: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let Some(tags) = self.tags(arn).await? else {
            self.arns.remove(remote_key);
            return self.import_new(bundle, remote_key, wanted).await;
        };
        refuse_unmanaged(&tags, "certificate", arn)?;
        let Some((certificate, chain)) = self.certificate(arn).await? else {
            self.arns.remove(remote_key);
            return self.import_new(bundle, remote_key, wanted).await;
        };
        if fingerprint(&certificate, &chain) == bundle.fingerprint() {
            return self.sync_tags(arn, &tags, wanted, remote_key).await;
        }
        self.import(bundle, Some(arn), None, remote_key).await?;
        // AWS keeps the tags of a re-imported certificate (moto drops them): the tags are
        // listed again and the reserved ones restored if they went.
        let tags = self.tags(arn).await?.unwrap_or_default();
        self.sync_tags(arn, &tags, wanted, remote_key).await
    }

    /// The PEM bundle of an exportable certificate.
    async fn export(&self, arn: &str, fingerprint: [u8; 32]) -> Result<Export, ProviderError> {
        let req = self.acm.describe_certificate().certificate_arn(arn);
        let described = self
            .c
            .calls
            .sdk("DescribeCertificate", arn, req.send().await)?;
        let exportable = described
            .certificate()
            .and_then(|d| d.options())
            .and_then(|o| o.export())
            == Some(&CertificateExport::Enabled);
        if !exportable {
            return Err(invalid(format!(
                "certificate {arn} is not exportable (its export option is not ENABLED; \
                 imported certificates cannot be exported)"
            )));
        }
        let passphrase = passphrase().map_err(ProviderError::Unavailable)?;
        let req = self
            .acm
            .export_certificate()
            .certificate_arn(arn)
            .passphrase(Blob::new(passphrase.as_slice()));
        let out = self
            .c
            .calls
            .sdk("ExportCertificate", arn, req.send().await)?;
        let mut parts: Vec<String> = [out.certificate(), out.certificate_chain()]
            .into_iter()
            .flatten()
            .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
            .collect();
        if let Some(key) = out.private_key() {
            let key = decrypt_key(key, &passphrase)
                .map_err(|why| ProviderError::Malformed(format!("certificate {arn}: {why}")))?;
            parts.push(key.trim_end_matches(['\r', '\n']).to_string());
        }
        if parts.is_empty() {
            return Err(ProviderError::Malformed(format!(
                "ExportCertificate answered nothing for {arn}"
            )));
        }
        let mut bundle = parts.join("\n");
        bundle.push('\n');
        Ok(Export {
            fingerprint,
            bundle: SecretBytes::new(bundle.into_bytes()),
        })
    }
}

#[async_trait]
impl SecretsClient for CertificateManagerClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let arn = remote.key.as_str();
        if arn.is_empty() {
            return Err(invalid("remoteRef.key must be the ARN of the certificate"));
        }
        let Some((certificate, chain)) = self.certificate(arn).await? else {
            return Err(ProviderError::not_found(arn));
        };
        let fingerprint = fingerprint(&certificate, &chain);
        if let Some(cached) = self.exports.get(arn)
            && cached.fingerprint == fingerprint
        {
            return Ok(cached.bundle);
        }
        let export = self.export(arn, fingerprint).await?;
        self.exports.insert(arn, export.clone());
        Ok(export.bundle)
    }

    async fn get_secret_map(&self, _remote: &RemoteRef) -> Result<SecretMap, ProviderError> {
        Err(ProviderError::Unsupported(
            "dataFrom.extract with service CertificateManager".into(),
        ))
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec: PushSpec = push_meta::parse(target.metadata.as_ref())?;
        let bundle = Bundle::from_value(value)?;
        let remote_key = self.c.name(&target.remote_key);
        match self.find(&remote_key).await? {
            Some(arn) => self.reimport(&arn, &bundle, &remote_key, &spec.tags).await,
            None => self.import_new(&bundle, &remote_key, &spec.tags).await,
        }
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let remote_key = self.c.name(&target.remote_key);
        let Some(arn) = self.find(&remote_key).await? else {
            return Ok(false);
        };
        if self.tags(&arn).await?.is_none() {
            self.arns.remove(&remote_key);
            return Ok(false);
        }
        Ok(true)
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let remote_key = self.c.name(&target.remote_key);
        let Some(arn) = self.find(&remote_key).await? else {
            return Ok(());
        };
        let Some(tags) = self.tags(&arn).await? else {
            self.arns.remove(&remote_key);
            return Ok(());
        };
        if !is_managed(&tags) {
            return Err(ProviderError::PermissionDenied(format!(
                "certificate {arn} not managed by external-secrets (no tag \
                 {MANAGED_BY}={EXTERNAL_SECRETS}): refusing to delete it"
            )));
        }
        let req = self.acm.delete_certificate().certificate_arn(&arn);
        found(
            self.c
                .calls
                .sdk("DeleteCertificate", &arn, req.send().await),
        )?;
        self.arns.remove(&remote_key);
        Ok(())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        self.c.validate().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_follow_the_metadata_and_keep_the_reserved_ones() {
        let current = map(&[
            ("managed-by", "external-secrets"),
            ("external-secrets-remote-key", "team/web"),
            ("team", "a"),
            ("keep", "same"),
        ]);
        let wanted = map(&[("keep", "same"), ("owner", "b"), ("managed-by", "me")]);
        let (remove, add) = tag_changes(&current, &wanted, "team/web");
        assert_eq!(remove, map(&[("team", "a")]));
        assert_eq!(add, map(&[("owner", "b")]));
        // Reserved tags that went are restored.
        let (remove, add) = tag_changes(&map(&[]), &map(&[]), "team/web");
        assert!(remove.is_empty());
        assert_eq!(
            add,
            map(&[
                ("managed-by", "external-secrets"),
                ("external-secrets-remote-key", "team/web")
            ])
        );
    }

    #[test]
    fn an_unchanged_bundle_has_acms_fingerprint() {
        let with_chain = Bundle {
            leaf: "LEAF\n".into(),
            chain: "CA\n".into(),
            key: String::new(),
        };
        assert_eq!(with_chain.fingerprint(), fingerprint("LEAF", "CA\n"));
        // Without a chain ACM answers the certificate as its chain.
        let alone = Bundle {
            chain: String::new(),
            ..with_chain
        };
        assert_eq!(alone.fingerprint(), fingerprint("LEAF\n", "LEAF"));
        assert_ne!(alone.fingerprint(), fingerprint("LEAF", ""));
    }

    #[test]
    fn the_whole_tls_secret_is_needed() {
        let err = |v: &str| tls_pair(&SecretBytes::from(v)).unwrap_err().to_string();
        assert!(err("-----BEGIN CERTIFICATE-----").contains("secretKey must be empty"));
        assert!(err("[1]").contains("secretKey must be empty"));
        assert!(err(r#"{"tls.crt":"x"}"#).contains("\"tls.key\""));
        assert!(err(r#"{"tls.crt":"","tls.key":"k"}"#).contains("\"tls.crt\""));
        let ok = tls_pair(&SecretBytes::from(
            r#"{"tls.crt":"c","tls.key":"k","ca.crt":"a"}"#,
        ));
        assert_eq!(ok.unwrap(), ("c".into(), "k".into()));
    }
}
