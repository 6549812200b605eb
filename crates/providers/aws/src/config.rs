//! The store's `aws` block, checked and flattened, and the endpoint overrides.

use std::collections::BTreeMap;

use strongroom_core::crd::external_secrets::{
    AwsProvider as Spec, SecretKeySelector, ServiceAccountSelector, StoreKind,
};
use strongroom_provider_api::{ProviderError, RetrySettings, StoreContext};

/// The AWS service a store reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager Parameter Store.
    ParameterStore,
    /// AWS Certificate Manager.
    CertificateManager,
}

/// How the base credentials are obtained.
#[derive(Debug, Clone)]
pub(crate) enum BaseAuth {
    /// Access key id, secret key and optional session token from Secrets.
    Static {
        access_key_id: SecretKeySelector,
        secret_access_key: SecretKeySelector,
        session_token: Option<SecretKeySelector>,
    },
    /// A ServiceAccount token exchanged for the role its annotation names.
    WebIdentity(ServiceAccountSelector),
    /// The SDK's default chain (environment, web identity file, ECS/EKS, instance profile).
    DefaultChain,
}

/// One role to assume.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoleHop {
    pub arn: String,
    pub external_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub transitive_tag_keys: Vec<String>,
}

/// The checked provider block.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub service: Service,
    pub region: String,
    pub prefix: String,
    pub auth: BaseAuth,
    /// `additionalRoles` then `role`, in the order they are assumed.
    pub roles: Vec<RoleHop>,
    pub force_delete_without_recovery: bool,
    pub recovery_window_in_days: Option<i64>,
    /// Credential references without a namespace in a ClusterSecretStore: they are read from
    /// the reading ExternalSecret's namespace, so the store alone cannot be validated.
    pub referent: bool,
    /// `spec.retrySettings`, checked.
    pub retry: Option<RetrySettings>,
    pub warnings: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

fn spec(store: &StoreContext) -> Result<&Spec, ProviderError> {
    store
        .provider
        .aws
        .as_ref()
        .ok_or_else(|| invalid("spec.provider.aws is missing"))
}

/// A SecretStore may only read credentials from its own namespace.
fn check_namespace(
    store: &StoreContext,
    field: &str,
    ns: Option<&str>,
) -> Result<(), ProviderError> {
    match (store.kind, ns) {
        (StoreKind::SecretStore, Some(ns)) if store.namespace.as_deref() != Some(ns) => {
            Err(invalid(format!(
                "{field}.namespace {ns:?}: a SecretStore may not read credentials from another namespace"
            )))
        }
        _ => Ok(()),
    }
}

fn selector(
    store: &StoreContext,
    field: &str,
    sel: Option<&SecretKeySelector>,
) -> Result<SecretKeySelector, ProviderError> {
    let sel = sel.ok_or_else(|| invalid(format!("{field} is required")))?;
    if sel.name.as_deref().unwrap_or("").is_empty() || sel.key.as_deref().unwrap_or("").is_empty() {
        return Err(invalid(format!("{field} needs name and key")));
    }
    check_namespace(store, field, sel.namespace.as_deref())?;
    Ok(sel.clone())
}

/// Session tag keys upstream reserves for `sessionTagsPolicy`.
const RESERVED_TAGS: [&str; 3] = ["esoNamespace", "esoStoreName", "esoStoreKind"];

impl Settings {
    /// Checks the store's `aws` block without I/O.
    pub(crate) fn from_store(store: &StoreContext) -> Result<Self, ProviderError> {
        let spec = spec(store)?;
        let service = match spec.service.as_str() {
            "SecretsManager" => Service::SecretsManager,
            "ParameterStore" => Service::ParameterStore,
            "CertificateManager" => Service::CertificateManager,
            other => {
                return Err(invalid(format!(
                    "service {other:?} is not one of SecretsManager, ParameterStore, CertificateManager"
                )));
            }
        };
        if spec.region.trim().is_empty() {
            return Err(invalid("region is required"));
        }
        let auth_block = spec.auth.clone().unwrap_or_default();
        let (auth, referent) = match (&auth_block.secret_ref, &auth_block.jwt) {
            (Some(_), Some(_)) => return Err(invalid("auth: set one of secretRef and jwt")),
            (Some(r), None) => {
                let access_key_id = selector(
                    store,
                    "auth.secretRef.accessKeyIDSecretRef",
                    r.access_key_id_secret_ref.as_ref(),
                )?;
                let secret_access_key = selector(
                    store,
                    "auth.secretRef.secretAccessKeySecretRef",
                    r.secret_access_key_secret_ref.as_ref(),
                )?;
                let session_token = r
                    .session_token_secret_ref
                    .as_ref()
                    .map(|s| selector(store, "auth.secretRef.sessionTokenSecretRef", Some(s)))
                    .transpose()?;
                let referent = store.is_referent(access_key_id.namespace.as_deref())
                    || store.is_referent(secret_access_key.namespace.as_deref());
                (
                    BaseAuth::Static {
                        access_key_id,
                        secret_access_key,
                        session_token,
                    },
                    referent,
                )
            }
            (None, Some(jwt)) => {
                let sa = jwt
                    .service_account_ref
                    .clone()
                    .ok_or_else(|| invalid("auth.jwt.serviceAccountRef is required"))?;
                if sa.name.is_empty() {
                    return Err(invalid("auth.jwt.serviceAccountRef.name is required"));
                }
                check_namespace(store, "auth.jwt.serviceAccountRef", sa.namespace.as_deref())?;
                let referent = store.is_referent(sa.namespace.as_deref());
                (BaseAuth::WebIdentity(sa), referent)
            }
            (None, None) => (BaseAuth::DefaultChain, false),
        };

        let mut roles: Vec<RoleHop> = spec
            .additional_roles
            .iter()
            .flatten()
            .filter(|r| !r.is_empty())
            .map(|arn| RoleHop {
                arn: arn.clone(),
                external_id: None,
                tags: BTreeMap::new(),
                transitive_tag_keys: Vec::new(),
            })
            .collect();
        let mut tags: BTreeMap<String, String> = spec
            .session_tags
            .iter()
            .flatten()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        let policy = spec.session_tags_policy.as_deref().unwrap_or("None");
        let mut warnings = Vec::new();
        match policy {
            "" | "None" => {}
            "Simple" | "Custom" => {
                if let Some(reserved) = tags.keys().find(|k| RESERVED_TAGS.contains(&k.as_str())) {
                    return Err(invalid(format!(
                        "sessionTags: {reserved:?} is reserved by sessionTagsPolicy {policy}"
                    )));
                }
                let namespace = store
                    .namespace
                    .clone()
                    .or_else(|| store.referent_namespace.clone())
                    .unwrap_or_default();
                tags.insert("esoNamespace".into(), namespace);
                tags.insert("esoStoreName".into(), store.name.clone());
                tags.insert("esoStoreKind".into(), format!("{:?}", store.kind));
                if policy == "Custom" {
                    for (k, v) in spec.custom_session_tags.iter().flatten() {
                        if RESERVED_TAGS.contains(&k.as_str()) {
                            return Err(invalid(format!(
                                "customSessionTags: {k:?} is a reserved session tag"
                            )));
                        }
                        tags.insert(k.clone(), v.clone());
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "sessionTagsPolicy {other:?} is not one of None, Simple, Custom"
                )));
            }
        }
        match spec.role.as_deref().filter(|r| !r.is_empty()) {
            Some(arn) => roles.push(RoleHop {
                arn: arn.into(),
                external_id: spec.external_id.clone().filter(|e| !e.is_empty()),
                tags,
                transitive_tag_keys: spec.transitive_tag_keys.clone().unwrap_or_default(),
            }),
            None => {
                if spec.external_id.as_deref().is_some_and(|e| !e.is_empty()) || !tags.is_empty() {
                    warnings.push(
                        "externalID and session tags apply to `role` only; no role is set".into(),
                    );
                }
            }
        }
        let sm = spec.secrets_manager.clone().unwrap_or_default();
        let force = sm.force_delete_without_recovery.unwrap_or(false);
        let window = sm.recovery_window_in_days.filter(|d| *d > 0);
        if force && window.is_some() {
            return Err(invalid(
                "secretsManager: forceDeleteWithoutRecovery and recoveryWindowInDays exclude each other",
            ));
        }
        if let Some(days) = window
            && !(7..=30).contains(&days)
        {
            return Err(invalid(format!(
                "secretsManager.recoveryWindowInDays {days} is not between 7 and 30"
            )));
        }
        Ok(Self {
            service,
            region: spec.region.trim().to_string(),
            prefix: spec.prefix.clone().unwrap_or_default(),
            auth,
            roles,
            force_delete_without_recovery: force,
            recovery_window_in_days: window,
            referent,
            retry: store.retry_settings()?,
            warnings,
        })
    }
}

/// Endpoint overrides per service; `None` uses the SDK's regional endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoints {
    pub secrets_manager: Option<String>,
    pub ssm: Option<String>,
    pub sts: Option<String>,
    /// ECR (the `ECRAuthorizationToken` generator).
    pub ecr: Option<String>,
    /// ECR Public (the `ECRAuthorizationToken` generator with `scope: public`).
    pub ecr_public: Option<String>,
    /// Certificate Manager.
    pub acm: Option<String>,
    /// The Resource Groups Tagging API (Certificate Manager finds pushed certificates by tag).
    pub tagging: Option<String>,
    /// CodeArtifact (the `CodeArtifactAuthorizationToken` generator).
    pub codeartifact: Option<String>,
}

impl Endpoints {
    /// `fixed` for every service, else upstream's process-wide variables.
    pub(crate) fn resolve(fixed: Option<&str>) -> Self {
        if let Some(url) = fixed {
            return Self {
                secrets_manager: Some(url.into()),
                ssm: Some(url.into()),
                sts: Some(url.into()),
                ecr: Some(url.into()),
                ecr_public: Some(url.into()),
                acm: Some(url.into()),
                tagging: Some(url.into()),
                codeartifact: Some(url.into()),
            };
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            secrets_manager: var("AWS_SECRETSMANAGER_ENDPOINT"),
            ssm: var("AWS_SSM_ENDPOINT"),
            sts: var("AWS_STS_ENDPOINT"),
            ecr: var("AWS_ECR_ENDPOINT"),
            ecr_public: var("AWS_ECR_PUBLIC_ENDPOINT"),
            acm: var("AWS_ACM_ENDPOINT"),
            tagging: var("AWS_RESOURCE_GROUPS_TAGGING_API_ENDPOINT"),
            codeartifact: var("AWS_CODEARTIFACT_ENDPOINT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{
        AwsAuth, AwsAuthSecretRef, AwsSecretsManagerOptions, AwsTag, SecretStoreProvider,
    };

    fn store(spec: Spec) -> StoreContext {
        StoreContext {
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: Some("ns".into()),
            referent_namespace: None,
            provider: SecretStoreProvider {
                aws: Some(spec),
                ..SecretStoreProvider::default()
            },
            retry: None,
        }
    }

    fn sel(name: &str, ns: Option<&str>) -> Option<SecretKeySelector> {
        Some(SecretKeySelector {
            name: Some(name.into()),
            key: Some("k".into()),
            namespace: ns.map(Into::into),
        })
    }

    fn base() -> Spec {
        Spec {
            service: "SecretsManager".into(),
            region: "eu-west-1".into(),
            ..Spec::default()
        }
    }

    #[test]
    fn checks_the_block() {
        let ok = Settings::from_store(&store(base())).map(|s| (s.service, s.roles.len()));
        assert_eq!(ok.ok(), Some((Service::SecretsManager, 0)));
        let acm = Settings::from_store(&store(Spec {
            service: "CertificateManager".into(),
            ..base()
        }));
        assert_eq!(
            acm.ok().map(|s| s.service),
            Some(Service::CertificateManager)
        );
        for bad in [
            Spec {
                service: "KeyManagement".into(),
                ..base()
            },
            Spec {
                region: String::new(),
                ..base()
            },
            Spec {
                auth: Some(AwsAuth {
                    secret_ref: Some(AwsAuthSecretRef {
                        access_key_id_secret_ref: sel("a", Some("other")),
                        secret_access_key_secret_ref: sel("a", None),
                        session_token_secret_ref: None,
                    }),
                    jwt: None,
                }),
                ..base()
            },
            Spec {
                secrets_manager: Some(AwsSecretsManagerOptions {
                    force_delete_without_recovery: Some(true),
                    recovery_window_in_days: Some(7),
                }),
                ..base()
            },
            Spec {
                session_tags_policy: Some("Simple".into()),
                session_tags: Some(vec![AwsTag {
                    key: "esoNamespace".into(),
                    value: "x".into(),
                }]),
                role: Some("arn:aws:iam::1:role/r".into()),
                ..base()
            },
        ] {
            assert!(matches!(
                Settings::from_store(&store(bad)),
                Err(ProviderError::InvalidConfig(_))
            ),);
        }
    }

    #[test]
    fn roles_in_order_with_tags_on_the_last() {
        let spec = Spec {
            additional_roles: Some(vec!["arn:a".into(), "arn:b".into()]),
            role: Some("arn:c".into()),
            external_id: Some("ext".into()),
            session_tags_policy: Some("Custom".into()),
            custom_session_tags: Some(BTreeMap::from([("team".into(), "x".into())])),
            ..base()
        };
        let s = Settings::from_store(&store(spec)).unwrap();
        let arns: Vec<_> = s.roles.iter().map(|r| r.arn.as_str()).collect();
        assert_eq!(arns, ["arn:a", "arn:b", "arn:c"]);
        assert!(s.roles[0].tags.is_empty() && s.roles[0].external_id.is_none());
        let last = &s.roles[2];
        assert_eq!(last.external_id.as_deref(), Some("ext"));
        assert_eq!(
            last.tags.get("esoNamespace").map(String::as_str),
            Some("ns")
        );
        assert_eq!(
            last.tags.get("esoStoreKind").map(String::as_str),
            Some("SecretStore")
        );
        assert_eq!(last.tags.get("team").map(String::as_str), Some("x"));
    }
}
