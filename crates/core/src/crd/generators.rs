//! `generators.external-secrets.io/v1alpha1`: the generator kinds an ExternalSecret or
//! PushSecret can reference, ClusterGenerator and GeneratorState.
//!
//! Password, UUID, Fake, ClusterGenerator and GeneratorState are modelled field by field (the
//! controller implements them); the other generators keep their spec as written, with the
//! fields upstream requires at its top level.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::crd::condition::Condition;
use crate::crd::schema::unmodelled_with_required;

/// The API group of every kind here.
pub const GROUP: &str = "generators.external-secrets.io";
/// Label on a GeneratorState naming the object that created it.
pub const OWNER_KEY_LABEL: &str = "generators.external-secrets.io/owner-key";

/// Any JSON value, stored as written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct AnyJson(pub serde_json::Value);

impl JsonSchema for AnyJson {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AnyJson".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// Declares one namespaced generator kind with the upstream labels and categories.
macro_rules! generator {
    ($(#[$attr:meta])* $kind:literal, $struct:literal, $plural:literal, $spec:ident { $($body:tt)* }) => {
        $(#[$attr])*
        #[skip_serializing_none]
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
        #[kube(
            group = "generators.external-secrets.io",
            version = "v1alpha1",
            kind = $kind,
            root = $struct,
            plural = $plural,
            namespaced,
            category = "external-secrets",
            category = "external-secrets-generators",
            label("external-secrets.io/component", "controller")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct $spec { $($body)* }
    };
}

/// Declares a generator whose spec Strongroom keeps as written.
macro_rules! unmodelled_generator {
    ($doc:literal, $kind:literal, $struct:literal, $plural:literal, $spec:ident, $body:ident, [$($req:literal),*]) => {
        unmodelled_with_required!(
            #[doc = concat!("The spec of a ", $kind, " generator, kept as written.")]
            $body,
            [$($req),*]
        );

        impl $body {
            /// Replaces a generated schema by this type's.
            fn spec_schema(s: &mut Schema) {
                *s = <$body as JsonSchema>::json_schema(&mut SchemaGenerator::default());
            }
        }

        #[doc = $doc]
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
        #[kube(
            group = "generators.external-secrets.io",
            version = "v1alpha1",
            kind = $kind,
            root = $struct,
            plural = $plural,
            namespaced,
            category = "external-secrets",
            category = "external-secrets-generators",
            label("external-secrets.io/component", "controller")
        )]
        #[schemars(transform = $body::spec_schema)]
        pub struct $spec {
            /// The upstream spec, kept as written.
            #[serde(flatten)]
            #[schemars(skip)]
            pub fields: BTreeMap<String, serde_json::Value>,
        }
    };
}

generator!(
    /// Generates a random password.
    "Password", "Password", "passwords", PasswordSpec {
        /// Length of the password; 24 when empty.
        #[schemars(range(min = 0))]
        pub length: Option<i64>,
        /// Number of digits; 25% of the length when empty.
        pub digits: Option<i64>,
        /// Number of symbols; 25% of the length when empty.
        pub symbols: Option<i64>,
        /// Symbol characters to use.
        pub symbol_characters: Option<String>,
        /// No uppercase letters.
        pub no_upper: Option<bool>,
        /// Allow repeated characters.
        pub allow_repeat: Option<bool>,
        /// Keys of the generated map; `password` when empty.
        pub secret_keys: Option<Vec<String>>,
        /// `raw` (default), `base64`, `base64url`, `base32` or `hex`.
        #[schemars(extend("enum" = ["base64", "base64url", "base32", "hex", "raw"]))]
        pub encoding: Option<String>,
    }
);

generator!(
    /// Generates a UUID.
    "UUID", "Uuid", "uuids", UuidSpec {}
);

generator!(
    /// Returns static values, for tests.
    "Fake", "Fake", "fakes", FakeSpec {
        /// Controller class that serves this generator.
        pub controller: Option<String>,
        /// The values returned.
        pub data: Option<BTreeMap<String, String>>,
    }
);

unmodelled_generator!(
    "Generates an Azure Container Registry token.",
    "ACRAccessToken",
    "AcrAccessToken",
    "acraccesstokens",
    AcrAccessTokenSpec,
    AcrAccessTokenBody,
    ["auth", "registry"]
);
unmodelled_generator!(
    "Requests dynamic credentials from BeyondTrust Workload Credentials.",
    "BeyondtrustWorkloadCredentialsDynamicSecret",
    "BeyondtrustWorkloadCredentialsDynamicSecret",
    "beyondtrustworkloadcredentialsdynamicsecrets",
    BeyondtrustWorkloadCredentialsDynamicSecretSpec,
    BeyondtrustWorkloadCredentialsDynamicSecretBody,
    ["provider"]
);
unmodelled_generator!(
    "Generates a Cloudsmith access token by OIDC.",
    "CloudsmithAccessToken",
    "CloudsmithAccessToken",
    "cloudsmithaccesstokens",
    CloudsmithAccessTokenSpec,
    CloudsmithAccessTokenBody,
    ["orgSlug", "serviceAccountRef", "serviceSlug"]
);
unmodelled_generator!(
    "Generates an AWS CodeArtifact authorization token.",
    "CodeArtifactAuthorizationToken",
    "CodeArtifactAuthorizationToken",
    "codeartifactauthorizationtokens",
    CodeArtifactAuthorizationTokenSpec,
    CodeArtifactAuthorizationTokenBody,
    ["domain", "domainOwner", "region"]
);
unmodelled_generator!(
    "Generates an AWS ECR authorization token.",
    "ECRAuthorizationToken",
    "EcrAuthorizationToken",
    "ecrauthorizationtokens",
    EcrAuthorizationTokenSpec,
    EcrAuthorizationTokenBody,
    ["region"]
);
unmodelled_generator!(
    "Generates a GCP access token for GCR.",
    "GCRAccessToken",
    "GcrAccessToken",
    "gcraccesstokens",
    GcrAccessTokenSpec,
    GcrAccessTokenBody,
    ["auth", "projectID"]
);
unmodelled_generator!(
    "Generates a GitHub App installation token.",
    "GithubAccessToken",
    "GithubAccessToken",
    "githubaccesstokens",
    GithubAccessTokenSpec,
    GithubAccessTokenBody,
    ["appID", "auth", "installID"]
);
unmodelled_generator!(
    "Generates a GitLab deploy token.",
    "GitlabDeployToken",
    "GitlabDeployToken",
    "gitlabdeploytokens",
    GitlabDeployTokenSpec,
    GitlabDeployTokenBody,
    ["auth", "name", "scopes"]
);
unmodelled_generator!(
    "Generates a Grafana service-account token.",
    "Grafana",
    "Grafana",
    "grafanas",
    GrafanaSpec,
    GrafanaBody,
    ["auth", "serviceAccount", "url"]
);
unmodelled_generator!(
    "Generates a TOTP value (RFC 6238).",
    "MFA",
    "Mfa",
    "mfas",
    MfaSpec,
    MfaBody,
    ["secret"]
);
unmodelled_generator!(
    "Generates a Quay robot-account token.",
    "QuayAccessToken",
    "QuayAccessToken",
    "quayaccesstokens",
    QuayAccessTokenSpec,
    QuayAccessTokenBody,
    ["robotAccount", "serviceAccountRef"]
);
unmodelled_generator!(
    "Generates an SSH key pair.",
    "SSHKey",
    "SshKey",
    "sshkeys",
    SshKeySpec,
    SshKeyBody,
    []
);
unmodelled_generator!(
    "Generates an AWS STS session token.",
    "STSSessionToken",
    "StsSessionToken",
    "stssessiontokens",
    StsSessionTokenSpec,
    StsSessionTokenBody,
    ["region"]
);
unmodelled_generator!(
    "Generates temporary AWS credentials by sts:AssumeRole.",
    "STSAssumeRoleToken",
    "StsAssumeRoleToken",
    "stsassumeroletokens",
    StsAssumeRoleTokenSpec,
    StsAssumeRoleTokenBody,
    ["region", "role"]
);
unmodelled_generator!(
    "Reads a Vault dynamic secret.",
    "VaultDynamicSecret",
    "VaultDynamicSecret",
    "vaultdynamicsecrets",
    VaultDynamicSecretSpec,
    VaultDynamicSecretBody,
    ["path", "provider"]
);
unmodelled_generator!(
    "Calls a third-party API to generate values.",
    "Webhook",
    "Webhook",
    "webhooks",
    WebhookSpec,
    WebhookBody,
    ["result", "url"]
);

/// The kinds a ClusterGenerator can wrap.
pub const CLUSTER_GENERATOR_KINDS: [&str; 17] = [
    "ACRAccessToken",
    "BeyondtrustWorkloadCredentialsDynamicSecret",
    "CloudsmithAccessToken",
    "CodeArtifactAuthorizationToken",
    "ECRAuthorizationToken",
    "Fake",
    "GCRAccessToken",
    "GithubAccessToken",
    "QuayAccessToken",
    "Password",
    "SSHKey",
    "STSSessionToken",
    "UUID",
    "VaultDynamicSecret",
    "Webhook",
    "Grafana",
    "MFA",
];

/// A generator usable from any namespace.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "ClusterGenerator",
    plural = "clustergenerators",
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    doc = "ClusterGenerator represents a cluster-wide generator which can be referenced as part of `generatorRef` fields."
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGeneratorSpec {
    /// Kind of the wrapped generator.
    #[schemars(extend("enum" = CLUSTER_GENERATOR_KINDS))]
    pub kind: String,
    /// The wrapped generator's spec; must match `kind`.
    pub generator: GeneratorSpec,
}

/// Exactly one generator spec.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct GeneratorSpec {
    /// Password generator.
    pub password_spec: Option<PasswordSpec>,
    /// UUID generator.
    pub uuid_spec: Option<UuidSpec>,
    /// Fake generator.
    pub fake_spec: Option<FakeSpec>,
    /// ACR token generator.
    pub acr_access_token_spec: Option<AcrAccessTokenBody>,
    /// BeyondTrust dynamic secret generator.
    pub beyondtrust_workload_credentials_dynamic_secret_spec:
        Option<BeyondtrustWorkloadCredentialsDynamicSecretBody>,
    /// Cloudsmith token generator.
    pub cloudsmith_access_token_spec: Option<CloudsmithAccessTokenBody>,
    /// CodeArtifact token generator.
    pub code_artifact_authorization_token_spec: Option<CodeArtifactAuthorizationTokenBody>,
    /// ECR token generator.
    pub ecr_authorization_token_spec: Option<EcrAuthorizationTokenBody>,
    /// GCR token generator.
    pub gcr_access_token_spec: Option<GcrAccessTokenBody>,
    /// GitHub token generator.
    pub github_access_token_spec: Option<GithubAccessTokenBody>,
    /// Quay token generator.
    pub quay_access_token_spec: Option<QuayAccessTokenBody>,
    /// SSH key generator.
    pub ssh_key_spec: Option<SshKeyBody>,
    /// STS session token generator.
    pub sts_session_token_spec: Option<StsSessionTokenBody>,
    /// Vault dynamic secret generator.
    pub vault_dynamic_secret_spec: Option<VaultDynamicSecretBody>,
    /// Webhook generator.
    pub webhook_spec: Option<WebhookBody>,
    /// Grafana token generator.
    pub grafana_spec: Option<GrafanaBody>,
    /// TOTP generator.
    #[serde(rename = "mfaSpec")]
    pub mfa_spec: Option<MfaBody>,
}

/// Generated values kept for rollback and garbage collection.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "generators.external-secrets.io",
    version = "v1alpha1",
    kind = "GeneratorState",
    plural = "generatorstates",
    namespaced,
    status = "GeneratorStateStatus",
    shortname = "gs",
    category = "external-secrets",
    category = "external-secrets-generators",
    label("external-secrets.io/component", "controller"),
    printcolumn(
        name = "GC Deadline",
        type_ = "string",
        json_path = ".spec.garbageCollectionDeadline"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateSpec {
    /// When the state is deleted; never when empty.
    pub garbage_collection_deadline: Option<Time>,
    /// The generator manifest that produced the state.
    pub resource: AnyJson,
    /// The state the generator produced.
    pub state: AnyJson,
}

/// What the controller last observed of a GeneratorState.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorStateStatus {
    /// `Ready` condition.
    pub conditions: Option<Vec<Condition>>,
}
