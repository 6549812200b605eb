//! Generators behind `dataFrom[].sourceRef.generatorRef`: Password, UUID and Fake, directly or
//! through a ClusterGenerator, as upstream generates them, GCRAccessToken (feature `gcp`, in the
//! gcp provider crate), ACRAccessToken (feature `azure`, in the azure provider crate),
//! ECRAuthorizationToken, STSSessionToken, STSAssumeRoleToken and
//! CodeArtifactAuthorizationToken (feature `aws`, in the aws provider crate) and
//! VaultDynamicSecret (feature `vault`, in the vault provider crate), SSHKey ([`ssh_key`]),
//! MFA ([`mfa`]), Webhook (feature `webhook`, [`webhook`] on the webhook provider crate's
//! call), GithubAccessToken ([`github`]), Grafana
//! ([`grafana`], whose tokens are deleted once replaced), GitlabDeployToken ([`gitlab`], whose
//! deploy tokens are revoked once replaced), QuayAccessToken ([`quay`]) and
//! CloudsmithAccessToken ([`cloudsmith`]) and BeyondtrustWorkloadCredentialsDynamicSecret
//! ([`beyondtrust`]). Other generator kinds are reported as not supported. Like upstream, a
//! generator runs at every refresh (use `refreshPolicy: CreatedOnce` or `refreshInterval: 0`
//! for values that must not change).

use std::collections::BTreeMap;

use base64::Engine as _;
use kube::api::Api;
use strongroom_core::crd::external_secrets::GeneratorRef;
#[cfg(feature = "azure")]
use strongroom_core::crd::generators::AcrAccessToken;
#[cfg(feature = "gcp")]
use strongroom_core::crd::generators::GcrAccessToken;
#[cfg(feature = "vault")]
use strongroom_core::crd::generators::VaultDynamicSecret;
#[cfg(feature = "webhook")]
use strongroom_core::crd::generators::Webhook;
use strongroom_core::crd::generators::{
    BeyondtrustWorkloadCredentialsDynamicSecret, CloudsmithAccessToken, ClusterGenerator, Fake,
    GithubAccessToken, GitlabDeployToken, Grafana, Mfa, Password, PasswordSpec, QuayAccessToken,
    SshKey, Uuid,
};
#[cfg(feature = "aws")]
use strongroom_core::crd::generators::{
    CodeArtifactAuthorizationToken, EcrAuthorizationToken, StsAssumeRoleToken, StsSessionToken,
};
use strongroom_provider_api::{SecretBytes, SecretMap};

use crate::stores::Stores;

pub mod beyondtrust;
pub mod cloudsmith;
pub mod github;
pub mod gitlab;
pub mod grafana;
pub mod mfa;
pub mod quay;
pub mod ssh_key;
#[cfg(feature = "webhook")]
pub mod webhook;

/// Upstream's default symbol characters.
const SYMBOLS: &str = "~!@#$%^&*()_+`-={}|[]\\:\"<>?,./";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

/// A uniformly random index below `n` (rejection sampling over OS randomness).
fn random_below(n: usize) -> Result<usize, String> {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).map_err(|e| format!("no randomness: {e}"))?;
        let v = u64::from_le_bytes(buf);
        if v < zone {
            return Ok((v % n) as usize);
        }
    }
}

fn pick(from: &mut Vec<char>, allow_repeat: bool) -> Result<char, String> {
    if from.is_empty() {
        return Err("not enough distinct characters for this password (set allowRepeat)".into());
    }
    let i = random_below(from.len())?;
    Ok(if allow_repeat {
        from[i]
    } else {
        from.remove(i)
    })
}

/// One password as upstream's generator makes it: `digits` digits, `symbols` symbols, letters
/// for the rest, shuffled; without `allowRepeat` no character appears twice.
pub fn password(spec: &PasswordSpec) -> Result<String, String> {
    let length = spec.length.unwrap_or(24);
    if !(0..=4096).contains(&length) {
        return Err(format!(
            "password length {length} is out of range (0 to 4096)"
        ));
    }
    let quarter = (length as f64 * 0.25) as i64;
    let digits = spec.digits.unwrap_or(quarter);
    let symbols = spec.symbols.unwrap_or(quarter);
    if digits < 0 || symbols < 0 || digits.checked_add(symbols).is_none_or(|n| n > length) {
        return Err("digits and symbols must be at least 0 and fit in the length".into());
    }
    let allow_repeat = spec.allow_repeat.unwrap_or(false);
    let mut letters: Vec<char> = LOWER.chars().collect();
    if !spec.no_upper.unwrap_or(false) {
        letters.extend(UPPER.chars());
    }
    let mut digit_chars: Vec<char> = DIGITS.chars().collect();
    let mut symbol_chars: Vec<char> = spec
        .symbol_characters
        .clone()
        .unwrap_or_else(|| SYMBOLS.to_string())
        .chars()
        .collect();
    let mut out = Vec::with_capacity(length as usize);
    for _ in 0..(length - digits - symbols) {
        out.push(pick(&mut letters, allow_repeat)?);
    }
    for _ in 0..digits {
        out.push(pick(&mut digit_chars, allow_repeat)?);
    }
    for _ in 0..symbols {
        out.push(pick(&mut symbol_chars, allow_repeat)?);
    }
    for i in (1..out.len()).rev() {
        let j = random_below(i + 1)?;
        out.swap(i, j);
    }
    Ok(out.into_iter().collect())
}

fn encode(value: &str, encoding: Option<&str>) -> Result<String, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    Ok(match encoding.unwrap_or("raw") {
        "raw" | "" => value.to_string(),
        "base64" => STANDARD.encode(value),
        "base64url" => URL_SAFE.encode(value),
        "hex" => value.bytes().map(|b| format!("{b:02x}")).collect(),
        "base32" => base32(value.as_bytes()),
        other => return Err(format!("unknown password encoding {other:?}")),
    })
}

/// RFC 4648 base32 with padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((v >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn password_map(spec: &PasswordSpec) -> Result<SecretMap, String> {
    let keys = spec
        .secret_keys
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| vec!["password".into()]);
    keys.into_iter()
        .map(|k| {
            let value = encode(&password(spec)?, spec.encoding.as_deref())?;
            Ok((k, SecretBytes::from(value.as_str())))
        })
        .collect()
}

fn uuid_map() -> Result<SecretMap, String> {
    let uuid = uuid_v4()?;
    Ok(BTreeMap::from([(
        "uuid".to_string(),
        SecretBytes::from(uuid.as_str()),
    )]))
}

/// A random (version 4) UUID in its text form.
pub(crate) fn uuid_v4() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    Ok(uuid)
}

fn fake_map(data: Option<&BTreeMap<String, String>>) -> SecretMap {
    data.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretBytes::from(v.as_str())))
        .collect()
}

/// Upstream's GCRAccessToken generator, through the gcp provider (its errors name no token).
#[cfg(feature = "gcp")]
async fn gcr_access_token(
    stores: &Stores,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    strongroom_provider_gcp::GcpProvider::from_env()
        .gcr_access_token(spec, namespace, stores.provider_env())
        .await
        .map_err(|e| format!("GCRAccessToken: {e}"))
}

/// Upstream's ECRAuthorizationToken, STSSessionToken, STSAssumeRoleToken and
/// CodeArtifactAuthorizationToken generators (`kind`), through the aws provider with the
/// stores' credential resolver (its errors name no token or key). `what` names the generator
/// object in messages.
#[cfg(feature = "aws")]
async fn aws_token(
    stores: &Stores,
    namespace: &str,
    (kind, what): (&str, &str),
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let aws = strongroom_provider_aws::AwsProvider::default();
    let env = stores.provider_env();
    // Each call's future is large (SDK clients, credential chains): boxed, so the generator's
    // own future stays small enough for a worker thread's stack.
    let out = match kind {
        "STSSessionToken" => Box::pin(aws.sts_session_token(spec, namespace, env)).await,
        "STSAssumeRoleToken" => Box::pin(aws.sts_assume_role_token(spec, namespace, env)).await,
        "CodeArtifactAuthorizationToken" => {
            Box::pin(aws.codeartifact_authorization_token(spec, namespace, env)).await
        }
        _ => Box::pin(aws.ecr_authorization_token(spec, namespace, env)).await,
    };
    out.map_err(|e| format!("{what}: {e}"))
}

/// A generator's `spec` as its typed form; the error reads as upstream's ("unable to parse
/// spec: …").
pub(crate) fn parse_spec<T: serde::de::DeserializeOwned>(
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<T, String> {
    let value = serde_json::Value::Object(spec.clone().into_iter().collect());
    serde_json::from_value(value).map_err(|e| format!("unable to parse spec: {e}"))
}

/// An HTTP error of a generator's call with its causes (a TLS or connection error says why),
/// without the URL (a rendered URL may hold a secret value).
pub(crate) use strongroom_provider_webhook::http::transport_error as http_error;

/// An HTTP client for a generator's calls: rustls on ring with the system roots (which honour
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`), and `timeout` per call (the webhook provider's client).
pub(crate) fn system_http_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    strongroom_provider_webhook::http::http_client(None, timeout).map_err(|e| e.to_string())
}

/// The `exp` claim of a JWT (read without checking the signature, as upstream does), in plain
/// decimal seconds; errors never quote the token.
pub(crate) fn jwt_expiry(token: &str) -> Result<String, String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return Err("error getting claims: invalid token format".into());
    };
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("error getting claims: the payload is not base64url JSON")?;
    claims
        .get("exp")
        .and_then(serde_json::Value::as_f64)
        .map(|e| e.to_string())
        .ok_or_else(|| "exp claim not found or wrong type".to_string())
}

/// A token of the ServiceAccount `serviceAccountRef` (`name`, `audiences`) names in
/// `namespace`, from the TokenRequest API.
pub(crate) async fn service_account_token(
    stores_env: &strongroom_provider_api::ProviderEnv,
    namespace: &str,
    reference: &serde_json::Value,
) -> Result<SecretBytes, String> {
    let name = reference
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let audiences: Vec<String> = reference
        .get("audiences")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    stores_env
        .credentials
        .service_account_token(namespace, name, &audiences, None)
        .await
        .map_err(|e| format!("failed to fetch service account token: {e}"))
}

/// The namespaced generator object `name` of kind `K` in `namespace`; errors name `what`.
async fn get_generator<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    what: &str,
) -> Result<K, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| kube_error(what, e))
}

fn kube_error(what: &str, e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => format!("{what} not found"),
        other => format!("reading {what}: {other}"),
    }
}

/// Upstream's ACRAccessToken generator, with credentials read in `namespace` (through the
/// same resolver as the stores' clients).
#[cfg(feature = "azure")]
async fn acr(
    stores: &Stores,
    namespace: &str,
    spec: serde_json::Value,
) -> Result<SecretMap, String> {
    let resolver = stores.provider_env().credentials;
    let endpoints = strongroom_provider_azure::Endpoints::from_env();
    strongroom_provider_azure::acr::generate(&spec, namespace, resolver, &endpoints)
        .await
        .map_err(|e| format!("ACRAccessToken: {e}"))
}

/// Upstream's VaultDynamicSecret generator, through the vault provider. `owner` names the
/// ExternalSecret's `dataFrom` entry. The lease it holds goes to `state`: the caller records
/// it in a GeneratorState, and revokes it (through [`cleanup`]) once it is replaced.
#[cfg(feature = "vault")]
async fn vault_dynamic_secret(
    stores: &Stores,
    namespace: &str,
    owner: &str,
    (name, what): (&str, &str),
    spec: serde_json::Value,
    state: &mut Option<GeneratedState>,
) -> Result<SecretMap, String> {
    let owner = format!("{namespace}/{owner}/{what}");
    let generated = strongroom_provider_vault::dynamic::generate_stateful(
        &spec,
        what,
        namespace,
        &owner,
        stores.provider_env(),
    )
    .await
    .map_err(|e| format!("{what}: {e}"))?;
    *state = generated
        .state
        .map(|s| GeneratedState::new("VaultDynamicSecret", name, namespace, &spec, s));
    Ok(generated.data)
}

/// Upstream's Grafana generator; the token it creates goes to `state`, to be deleted (through
/// [`cleanup`]) once it is replaced.
async fn grafana_token(
    stores: &Stores,
    namespace: &str,
    (name, what): (&str, &str),
    spec: &BTreeMap<String, serde_json::Value>,
    state: &mut Option<GeneratedState>,
) -> Result<SecretMap, String> {
    let (data, token_state) = grafana::generate(&stores.provider_env(), namespace, spec)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    *state = Some(GeneratedState::new(
        "Grafana",
        name,
        namespace,
        spec,
        token_state,
    ));
    Ok(data)
}

/// Upstream's GitlabDeployToken generator; the deploy token it creates goes to `state`, to be
/// revoked (through [`cleanup`]) once it is replaced.
async fn gitlab_deploy_token(
    stores: &Stores,
    namespace: &str,
    (name, what): (&str, &str),
    spec: &BTreeMap<String, serde_json::Value>,
    state: &mut Option<GeneratedState>,
) -> Result<SecretMap, String> {
    let env = stores.provider_env();
    let (data, token_state) = Box::pin(gitlab::generate(&env, namespace, spec))
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    *state = Some(GeneratedState::new(
        "GitlabDeployToken",
        name,
        namespace,
        spec,
        token_state,
    ));
    Ok(data)
}

/// What a generation left behind that must be cleaned up once its output is replaced: the
/// generator manifest (`resource`) and the generator's own state (lease ids, no values).
#[derive(Debug, Clone)]
pub struct GeneratedState {
    /// The generator as it was run: `apiVersion`, `kind`, `metadata.name`, `spec`.
    pub resource: serde_json::Value,
    /// The generator's state.
    pub state: serde_json::Value,
}

impl GeneratedState {
    /// The state a generator of `kind` named `name` in `namespace` left, with its spec.
    fn new(
        kind: &str,
        name: &str,
        namespace: &str,
        spec: &impl serde::Serialize,
        state: serde_json::Value,
    ) -> Self {
        GeneratedState {
            resource: serde_json::json!({
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }),
            state,
        }
    }
}

/// A recorded VaultDynamicSecret generation: how to name it in messages, and its spec.
#[cfg(feature = "vault")]
fn vault_dynamic(resource: &serde_json::Value) -> Option<(String, serde_json::Value)> {
    let kind = resource.get("kind").and_then(serde_json::Value::as_str);
    (kind == Some("VaultDynamicSecret")).then(|| {
        let name = resource
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        (
            format!("VaultDynamicSecret {name:?}"),
            resource.get("spec").cloned().unwrap_or_default(),
        )
    })
}

/// Cleans up a generation's state (revokes a VaultDynamicSecret lease) in `namespace`.
pub async fn cleanup(
    stores: &Stores,
    namespace: &str,
    resource: &serde_json::Value,
    state: &serde_json::Value,
) -> Result<(), String> {
    #[cfg(feature = "vault")]
    if let Some((what, spec)) = vault_dynamic(resource) {
        return strongroom_provider_vault::dynamic::cleanup(
            &spec,
            &what,
            namespace,
            state,
            stores.provider_env(),
        )
        .await
        .map_err(|e| format!("{what}: {e}"));
    }
    let kind = resource.get("kind").and_then(serde_json::Value::as_str);
    if let Some(kind @ ("Grafana" | "GitlabDeployToken")) = kind {
        let name = resource
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let spec: BTreeMap<String, serde_json::Value> = resource
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        let env = stores.provider_env();
        let done = if kind == "Grafana" {
            grafana::cleanup(&env, namespace, &spec, state).await
        } else {
            Box::pin(gitlab::cleanup(&env, namespace, &spec, state)).await
        };
        return done.map_err(|e| format!("{kind} {name:?}: {e}"));
    }
    // no other generator leaves state
    let _ = (stores, namespace, resource, state);
    Ok(())
}

/// Takes over what keeps a recorded generation alive after a restart (the renewal of a
/// VaultDynamicSecret lease, see `strongroom_provider_vault::dynamic::adopt`). Whether it
/// was taken over now.
pub async fn adopt(
    stores: &Stores,
    namespace: &str,
    resource: &serde_json::Value,
    state: &serde_json::Value,
) -> Result<bool, String> {
    #[cfg(feature = "vault")]
    if let Some((what, spec)) = vault_dynamic(resource) {
        return strongroom_provider_vault::dynamic::adopt(
            &spec,
            &what,
            namespace,
            state,
            stores.provider_env(),
        )
        .await
        .map_err(|e| format!("{what}: {e}"));
    }
    // no other generator keeps anything alive
    let _ = (stores, namespace, resource, state);
    Ok(false)
}

/// Runs the generator `r` names, for the `dataFrom` entry `owner` of an ExternalSecret in
/// `namespace`. A generator that leaves something to clean up sets `state`.
pub async fn generate(
    stores: &Stores,
    namespace: &str,
    #[cfg_attr(not(feature = "vault"), allow(unused_variables))] owner: &str,
    r: &GeneratorRef,
    state: &mut Option<GeneratedState>,
) -> Result<SecretMap, String> {
    let client = stores.client_api();
    let what = format!("{} {:?}", r.kind, r.name);
    match r.kind.as_str() {
        #[cfg(feature = "gcp")]
        "GCRAccessToken" => {
            let g = get_generator::<GcrAccessToken>(client, namespace, &r.name, &what).await?;
            gcr_access_token(stores, namespace, &g.spec.fields).await
        }
        "Password" => {
            let g = get_generator::<Password>(client, namespace, &r.name, &what).await?;
            password_map(&g.spec)
        }
        "UUID" => {
            get_generator::<Uuid>(client, namespace, &r.name, &what).await?;
            uuid_map()
        }
        "Fake" => {
            let g = get_generator::<Fake>(client, namespace, &r.name, &what).await?;
            Ok(fake_map(g.spec.data.as_ref()))
        }
        "SSHKey" => {
            let g = get_generator::<SshKey>(client, namespace, &r.name, &what).await?;
            ssh_key::generate(&g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "MFA" => {
            let g = get_generator::<Mfa>(client, namespace, &r.name, &what).await?;
            mfa::generate(client, namespace, &g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "GithubAccessToken" => {
            let g = get_generator::<GithubAccessToken>(client, namespace, &r.name, &what).await?;
            github::generate(client, &stores.provider_env(), namespace, &g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "QuayAccessToken" => {
            let g = get_generator::<QuayAccessToken>(client, namespace, &r.name, &what).await?;
            quay::generate(&stores.provider_env(), namespace, &g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "CloudsmithAccessToken" => {
            let g =
                get_generator::<CloudsmithAccessToken>(client, namespace, &r.name, &what).await?;
            cloudsmith::generate(&stores.provider_env(), namespace, &g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "Grafana" => {
            let g = get_generator::<Grafana>(client, namespace, &r.name, &what).await?;
            grafana_token(stores, namespace, (&r.name, &what), &g.spec.fields, state).await
        }
        "BeyondtrustWorkloadCredentialsDynamicSecret" => {
            let g = get_generator::<BeyondtrustWorkloadCredentialsDynamicSecret>(
                client, namespace, &r.name, &what,
            )
            .await?;
            let env = stores.provider_env();
            Box::pin(beyondtrust::generate(&env, namespace, &g.spec.fields))
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        "GitlabDeployToken" => {
            let g = get_generator::<GitlabDeployToken>(client, namespace, &r.name, &what).await?;
            gitlab_deploy_token(stores, namespace, (&r.name, &what), &g.spec.fields, state).await
        }
        #[cfg(feature = "webhook")]
        "Webhook" => {
            let g = get_generator::<Webhook>(client, namespace, &r.name, &what).await?;
            webhook::generate(&stores.provider_env(), namespace, &g.spec.fields)
                .await
                .map_err(|e| format!("{what}: {e}"))
        }
        #[cfg(feature = "azure")]
        "ACRAccessToken" => {
            let g = get_generator::<AcrAccessToken>(client, namespace, &r.name, &what).await?;
            acr(
                stores,
                namespace,
                serde_json::to_value(&g.spec).unwrap_or_default(),
            )
            .await
        }
        #[cfg(feature = "aws")]
        "ECRAuthorizationToken" => {
            let g =
                get_generator::<EcrAuthorizationToken>(client, namespace, &r.name, &what).await?;
            aws_token(stores, namespace, (&r.kind, &what), &g.spec.fields).await
        }
        #[cfg(feature = "aws")]
        "STSSessionToken" => {
            let g = get_generator::<StsSessionToken>(client, namespace, &r.name, &what).await?;
            aws_token(stores, namespace, (&r.kind, &what), &g.spec.fields).await
        }
        #[cfg(feature = "aws")]
        "STSAssumeRoleToken" => {
            let g = get_generator::<StsAssumeRoleToken>(client, namespace, &r.name, &what).await?;
            aws_token(stores, namespace, (&r.kind, &what), &g.spec.fields).await
        }
        #[cfg(feature = "aws")]
        "CodeArtifactAuthorizationToken" => {
            let g =
                get_generator::<CodeArtifactAuthorizationToken>(client, namespace, &r.name, &what)
                    .await?;
            aws_token(stores, namespace, (&r.kind, &what), &g.spec.fields).await
        }
        #[cfg(feature = "vault")]
        "VaultDynamicSecret" => {
            let g = get_generator::<VaultDynamicSecret>(client, namespace, &r.name, &what).await?;
            let spec = serde_json::to_value(&g.spec).unwrap_or_default();
            vault_dynamic_secret(stores, namespace, owner, (&r.name, &what), spec, state).await
        }
        "ClusterGenerator" => {
            let g = Api::<ClusterGenerator>::all(client.clone())
                .get(&r.name)
                .await
                .map_err(|e| kube_error(&what, e))?;
            let spec = &g.spec.generator;
            match g.spec.kind.as_str() {
                "Password" => password_map(
                    spec.password_spec
                        .as_ref()
                        .ok_or("ClusterGenerator of kind Password has no passwordSpec")?,
                ),
                "UUID" => uuid_map(),
                #[cfg(feature = "gcp")]
                "GCRAccessToken" => {
                    let body = spec.gcr_access_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind GCRAccessToken has no gcrAccessTokenSpec",
                    )?;
                    gcr_access_token(stores, namespace, &body.0).await
                }
                #[cfg(feature = "azure")]
                "ACRAccessToken" => {
                    let body = spec.acr_access_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind ACRAccessToken has no acrAccessTokenSpec",
                    )?;
                    acr(
                        stores,
                        namespace,
                        serde_json::to_value(body).unwrap_or_default(),
                    )
                    .await
                }
                #[cfg(feature = "aws")]
                "ECRAuthorizationToken" => {
                    let body = spec.ecr_authorization_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind ECRAuthorizationToken has no ecrAuthorizationTokenSpec",
                    )?;
                    let what = format!("{what} (ECRAuthorizationToken)");
                    aws_token(stores, namespace, ("ECRAuthorizationToken", &what), &body.0).await
                }
                #[cfg(feature = "aws")]
                "STSSessionToken" => {
                    let body = spec.sts_session_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind STSSessionToken has no stsSessionTokenSpec",
                    )?;
                    let what = format!("{what} (STSSessionToken)");
                    aws_token(stores, namespace, ("STSSessionToken", &what), &body.0).await
                }
                #[cfg(feature = "aws")]
                "CodeArtifactAuthorizationToken" => {
                    let body = spec.code_artifact_authorization_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind CodeArtifactAuthorizationToken has no codeArtifactAuthorizationTokenSpec",
                    )?;
                    let what = format!("{what} (CodeArtifactAuthorizationToken)");
                    let kind = "CodeArtifactAuthorizationToken";
                    aws_token(stores, namespace, (kind, &what), &body.0).await
                }
                #[cfg(feature = "vault")]
                "VaultDynamicSecret" => {
                    let body = spec.vault_dynamic_secret_spec.as_ref().ok_or(
                        "ClusterGenerator of kind VaultDynamicSecret has no vaultDynamicSecretSpec",
                    )?;
                    let body = serde_json::to_value(body).unwrap_or_default();
                    vault_dynamic_secret(stores, namespace, owner, (&r.name, &what), body, state)
                        .await
                }
                "Fake" => Ok(fake_map(
                    spec.fake_spec.as_ref().and_then(|f| f.data.as_ref()),
                )),
                "SSHKey" => {
                    let body = spec
                        .ssh_key_spec
                        .as_ref()
                        .ok_or("ClusterGenerator of kind SSHKey has no sshKeySpec")?;
                    ssh_key::generate(&body.0)
                        .await
                        .map_err(|e| format!("{what} (SSHKey): {e}"))
                }
                "MFA" => {
                    let body = spec
                        .mfa_spec
                        .as_ref()
                        .ok_or("ClusterGenerator of kind MFA has no mfaSpec")?;
                    mfa::generate(client, namespace, &body.0)
                        .await
                        .map_err(|e| format!("{what} (MFA): {e}"))
                }
                "GithubAccessToken" => {
                    let body = spec.github_access_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind GithubAccessToken has no githubAccessTokenSpec",
                    )?;
                    github::generate(client, &stores.provider_env(), namespace, &body.0)
                        .await
                        .map_err(|e| format!("{what} (GithubAccessToken): {e}"))
                }
                "QuayAccessToken" => {
                    let body = spec.quay_access_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind QuayAccessToken has no quayAccessTokenSpec",
                    )?;
                    quay::generate(&stores.provider_env(), namespace, &body.0)
                        .await
                        .map_err(|e| format!("{what} (QuayAccessToken): {e}"))
                }
                "CloudsmithAccessToken" => {
                    let body = spec.cloudsmith_access_token_spec.as_ref().ok_or(
                        "ClusterGenerator of kind CloudsmithAccessToken has no cloudsmithAccessTokenSpec",
                    )?;
                    cloudsmith::generate(&stores.provider_env(), namespace, &body.0)
                        .await
                        .map_err(|e| format!("{what} (CloudsmithAccessToken): {e}"))
                }
                "BeyondtrustWorkloadCredentialsDynamicSecret" => {
                    let body = spec
                        .beyondtrust_workload_credentials_dynamic_secret_spec
                        .as_ref()
                        .ok_or(
                            "ClusterGenerator of kind BeyondtrustWorkloadCredentialsDynamicSecret has no beyondtrustWorkloadCredentialsDynamicSecretSpec",
                        )?;
                    let env = stores.provider_env();
                    Box::pin(beyondtrust::generate(&env, namespace, &body.0))
                        .await
                        .map_err(|e| {
                            format!("{what} (BeyondtrustWorkloadCredentialsDynamicSecret): {e}")
                        })
                }
                "Grafana" => {
                    let body = spec
                        .grafana_spec
                        .as_ref()
                        .ok_or("ClusterGenerator of kind Grafana has no grafanaSpec")?;
                    grafana_token(stores, namespace, (&r.name, &what), &body.0, state).await
                }
                #[cfg(feature = "webhook")]
                "Webhook" => {
                    let body = spec
                        .webhook_spec
                        .as_ref()
                        .ok_or("ClusterGenerator of kind Webhook has no webhookSpec")?;
                    webhook::generate(&stores.provider_env(), namespace, &body.0)
                        .await
                        .map_err(|e| format!("{what} (Webhook): {e}"))
                }
                other => Err(format!(
                    "generator kind {other:?} is not supported by this controller yet"
                )),
            }
        }
        other => Err(format!(
            "generator kind {other:?} is not supported by this controller yet"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_the_spec() {
        let spec = PasswordSpec {
            length: Some(32),
            digits: Some(5),
            symbols: Some(3),
            no_upper: Some(true),
            ..Default::default()
        };
        for _ in 0..20 {
            let p = password(&spec).unwrap_or_default();
            assert_eq!(p.chars().count(), 32);
            assert_eq!(p.chars().filter(char::is_ascii_digit).count(), 5);
            assert_eq!(p.chars().filter(|c| SYMBOLS.contains(*c)).count(), 3);
            assert!(!p.chars().any(|c| c.is_ascii_uppercase()));
            let distinct: std::collections::BTreeSet<char> = p.chars().collect();
            assert_eq!(distinct.len(), 32, "no repeats without allowRepeat");
        }
        let default = password(&PasswordSpec::default()).unwrap_or_default();
        assert_eq!(default.len(), 24);
        assert!(
            password(&PasswordSpec {
                length: Some(40),
                digits: Some(20),
                ..Default::default()
            })
            .is_err(),
            "only 10 distinct digits"
        );
        assert!(
            password(&PasswordSpec {
                length: Some(4),
                digits: Some(3),
                symbols: Some(3),
                ..Default::default()
            })
            .is_err()
        );
        let keys = password_map(&PasswordSpec {
            secret_keys: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        })
        .unwrap_or_default();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys["a"], keys["b"]);
    }

    #[test]
    fn hostile_counts_are_refused_not_looped() {
        let spec = PasswordSpec {
            digits: Some(i64::MAX),
            symbols: Some(i64::MAX),
            allow_repeat: Some(true),
            ..Default::default()
        };
        assert!(password(&spec).is_err());
        assert!(
            password(&PasswordSpec {
                length: Some(i64::MAX),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn jwt_expiry_reads_exp_as_upstream_prints_it() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = |claims: &str| format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(
            jwt_expiry(&token(r#"{"exp": 1700000000}"#)).ok().as_deref(),
            Some("1700000000")
        );
        assert!(jwt_expiry(&token(r#"{"exp": "soon"}"#)).is_err());
        let e = jwt_expiry("canary-not-a-jwt").err().unwrap_or_default();
        assert!(
            e.contains("invalid token format") && !e.contains("canary"),
            "{e}"
        );
    }

    #[test]
    fn encodings_and_uuids() {
        assert_eq!(encode("hi", Some("base64")).ok().as_deref(), Some("aGk="));
        assert_eq!(encode("hi", Some("hex")).ok().as_deref(), Some("6869"));
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        assert!(encode("x", Some("rot13")).is_err());
        let u = uuid_map().unwrap_or_default();
        let text = String::from_utf8_lossy(u["uuid"].expose()).into_owned();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
    }
}
