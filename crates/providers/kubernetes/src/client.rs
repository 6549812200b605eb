//! A session with one store's API server: the Secret reads, the search, the pushes and the
//! store check, each counted as one call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::StoreKind;
use strongroom_provider_api::{
    CallObserver, FindQuery, ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes,
    SecretMap, SecretsClient, StoreContext, Validation, map_from_json,
};

use crate::METRIC_NAME;
use crate::connection::{self, Connection};
use crate::http::{self, Credentials};
use crate::secret::{self, PushMeta, Secret};

/// The data key a push without `property` sets. Upstream refuses a single-key push without a
/// property; the provider API hands providers one value per push, so it gets this key.
pub const DEFAULT_PUSH_KEY: &str = "value";
/// Secrets per list page.
const PAGE: &str = "500";

/// An authenticated session (or, for a ClusterSecretStore with referent authentication
/// validated without a reader, a placeholder that only answers `validate`).
pub struct KubernetesClient {
    session: Option<Session>,
    referent: bool,
    store_kind: StoreKind,
    remote_namespace: String,
    calls: Arc<dyn CallObserver>,
    valid_until: Option<Instant>,
}

struct Session {
    http: reqwest::Client,
    base: String,
    bearer: Option<SecretBytes>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl KubernetesClient {
    /// Resolves the store's credentials and builds the HTTP client. Makes no API call.
    pub async fn connect(store: &StoreContext, env: ProviderEnv) -> Result<Self, ProviderError> {
        let spec = connection::spec(store)?;
        let referent = connection::is_referent(store, spec);
        let mut client = Self {
            session: None,
            referent,
            store_kind: store.kind,
            remote_namespace: connection::remote_namespace(spec),
            calls: env.calls.clone(),
            valid_until: None,
        };
        // Validating a referent ClusterSecretStore: no reader, so no credentials to read.
        if referent && store.referent_namespace.is_none() {
            return Ok(client);
        }
        let Connection {
            base,
            trust,
            credentials,
            valid_until,
        } = connection::resolve(store, &env).await?;
        let http = http::client(&trust, &credentials)?;
        let bearer = match credentials {
            Credentials::Bearer(t) => Some(t),
            Credentials::ClientCert { .. } => None,
        };
        client.session = Some(Session { http, base, bearer });
        client.valid_until = valid_until;
        Ok(client)
    }

    fn session(&self) -> Result<&Session, ProviderError> {
        self.session.as_ref().ok_or_else(|| {
            ProviderError::InvalidConfig(
                "this ClusterSecretStore resolves its credentials in the reading \
                 ExternalSecret's namespace (referent authentication), and none is known"
                    .into(),
            )
        })
    }

    /// One API call. `Ok(None)` on 404; counted as `call`, successful only on 2xx.
    async fn send(
        &self,
        call: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let session = self.session()?;
        let what = format!("{what} at {}", session.base);
        let mut url = reqwest::Url::parse(&session.base)
            .map_err(|e| ProviderError::InvalidConfig(format!("{what}: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::InvalidConfig(format!("{what}: URL cannot have a path")))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = session
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &session.bearer {
            let text = std::str::from_utf8(token.expose()).map_err(|_| {
                ProviderError::Authentication("the bearer token is not UTF-8".into())
            })?;
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", text.trim()))
                    .map_err(|_| {
                        ProviderError::Authentication(
                            "the bearer token holds characters not allowed in an HTTP header"
                                .into(),
                        )
                    })?;
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.calls.observe(METRIC_NAME, call, false);
                return Err(http::transport_error(&e, &what));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                self.calls.observe(METRIC_NAME, call, false);
                return Err(http::transport_error(&e, &what));
            }
        };
        let ok = (200..300).contains(&status);
        self.calls.observe(METRIC_NAME, call, ok);
        if ok {
            return Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
        }
        if status == 404 {
            return Ok(None);
        }
        Err(http::status_error(
            status,
            retry_after.as_deref(),
            &bytes,
            &what,
        ))
    }

    fn namespace_for(&self, meta: Option<&PushMeta>) -> Result<String, ProviderError> {
        match meta
            .and_then(|m| m.remote_namespace.as_deref())
            .filter(|n| !n.is_empty())
        {
            None => Ok(self.remote_namespace.clone()),
            Some(_) if self.store_kind != StoreKind::ClusterSecretStore => {
                Err(ProviderError::InvalidConfig(
                    "remoteNamespace override is only supported with ClusterSecretStore".into(),
                ))
            }
            Some(ns) => Ok(ns.to_string()),
        }
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ProviderError> {
        if name.is_empty() {
            return Err(ProviderError::InvalidConfig(
                "the remote key (a Secret name) is empty".into(),
            ));
        }
        self.send(
            "GetSecret",
            Method::GET,
            &["api", "v1", "namespaces", namespace, "secrets", name],
            &[],
            None,
            &format!("get Secret \"{namespace}/{name}\""),
        )
        .await?
        .map(Secret::from_json)
        .transpose()
    }

    async fn read(&self, remote: &RemoteRef) -> Result<Secret, ProviderError> {
        self.get(&self.remote_namespace, &remote.key)
            .await?
            .ok_or_else(|| ProviderError::not_found(&remote.key))
    }

    async fn list(&self, selector: &str) -> Result<Vec<Secret>, ProviderError> {
        let ns = self.remote_namespace.clone();
        let mut out = Vec::new();
        let mut cont = String::new();
        loop {
            let mut query = vec![("limit", PAGE)];
            if !selector.is_empty() {
                query.push(("labelSelector", selector));
            }
            if !cont.is_empty() {
                query.push(("continue", cont.as_str()));
            }
            let page = self
                .send(
                    "ListSecrets",
                    Method::GET,
                    &["api", "v1", "namespaces", &ns, "secrets"],
                    &query,
                    None,
                    &format!("list Secrets in namespace {ns:?}"),
                )
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("namespace {ns}")))?;
            let items = page
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                out.push(Secret::from_json(item)?);
            }
            cont = page
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if cont.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn full_delete(&self, namespace: &str, name: &str) -> Result<(), ProviderError> {
        self.send(
            "DeleteSecret",
            Method::DELETE,
            &["api", "v1", "namespaces", namespace, "secrets", name],
            &[],
            None,
            &format!("delete Secret \"{namespace}/{name}\""),
        )
        .await
        .map(|_| ())
    }

    async fn update(&self, namespace: &str, name: &str, raw: &Value) -> Result<(), ProviderError> {
        let answer = self
            .send(
                "UpdateSecret",
                Method::PUT,
                &["api", "v1", "namespaces", namespace, "secrets", name],
                &[],
                Some(raw),
                &format!("update Secret \"{namespace}/{name}\""),
            )
            .await?;
        answer.map(|_| ()).ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "Secret \"{namespace}/{name}\" vanished during the update"
            ))
        })
    }
}

fn json_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[async_trait]
impl SecretsClient for KubernetesClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let secret = self.read(remote).await?;
        match &remote.property {
            None if remote.fetch_metadata => Ok(secret.metadata_json()),
            None => Ok(secret.data_json()),
            Some(p) => secret
                .property(p, remote.fetch_metadata)
                .ok_or_else(|| ProviderError::not_found_in(&remote.key, format!("property {p:?}"))),
        }
    }

    async fn get_secret_map(&self, remote: &RemoteRef) -> Result<SecretMap, ProviderError> {
        let secret = self.read(remote).await?;
        match &remote.property {
            None if remote.fetch_metadata => Ok(secret.metadata_map()),
            None => Ok(secret.data),
            Some(p) => {
                let value = secret.property(p, remote.fetch_metadata).ok_or_else(|| {
                    ProviderError::not_found_in(&remote.key, format!("property {p:?}"))
                })?;
                map_from_json(&remote.key, value.expose())
            }
        }
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let filter = query.name_filter()?;
        let selector = query
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(self
            .list(&selector)
            .await?
            .into_iter()
            .filter(|s| filter.as_ref().is_none_or(|f| f.is_match(&s.name)))
            .map(|s| (s.name.clone(), s.data_json()))
            .collect())
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let meta = secret::push_meta(target.metadata.as_ref())?;
        let ns = self.namespace_for(meta.as_ref())?;
        let name = target.remote_key.as_str();
        let key = target
            .property
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PUSH_KEY);
        let (pushed_labels, pushed_annotations) = match &meta {
            Some(m) => (m.labels.clone(), m.annotations.clone()),
            None => Default::default(),
        };
        let Some(existing) = self.get(&ns, name).await? else {
            let labels = secret::merged(None, &pushed_labels, meta.as_ref());
            let annotations = secret::merged(None, &pushed_annotations, meta.as_ref());
            let mut metadata = json!({"name": name, "namespace": ns});
            if !labels.is_empty() {
                metadata["labels"] = json_map(&labels);
            }
            if !annotations.is_empty() {
                metadata["annotations"] = json_map(&annotations);
            }
            let body = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": "Opaque",
                "data": {key: b64(value.expose())},
            });
            let created = self
                .send(
                    "CreateSecret",
                    Method::POST,
                    &["api", "v1", "namespaces", &ns, "secrets"],
                    &[],
                    Some(&body),
                    &format!("create Secret \"{ns}/{name}\""),
                )
                .await?;
            return created.map(|_| ()).ok_or_else(|| ProviderError::NotFound {
                key: name.to_string(),
                detail: format!("namespace {ns:?} does not exist"),
            });
        };
        let labels = secret::merged(existing.labels.as_ref(), &pushed_labels, meta.as_ref());
        let annotations = secret::merged(
            existing.annotations.as_ref(),
            &pushed_annotations,
            meta.as_ref(),
        );
        let same_value = existing
            .data
            .get(key)
            .is_some_and(|v| v.expose() == value.expose());
        let same_labels = existing.labels.clone().unwrap_or_default() == labels;
        let same_annotations = existing.annotations.clone().unwrap_or_default() == annotations;
        if same_value && same_labels && same_annotations {
            return Ok(());
        }
        let mut raw = existing.raw;
        if !raw.get("data").is_some_and(Value::is_object) {
            raw["data"] = json!({});
        }
        raw["data"][key] = Value::String(b64(value.expose()));
        if !same_labels {
            raw["metadata"]["labels"] = json_map(&labels);
        }
        if !same_annotations {
            raw["metadata"]["annotations"] = json_map(&annotations);
        }
        self.update(&ns, name, &raw).await
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let meta = secret::push_meta(target.metadata.as_ref())?;
        let ns = self.namespace_for(meta.as_ref())?;
        let name = target.remote_key.as_str();
        let Some(existing) = self.get(&ns, name).await? else {
            return Ok(());
        };
        // Only the key a push wrote goes: without a property that is DEFAULT_PUSH_KEY (upstream
        // deletes the whole Secret there, since its property-less push replaced all data).
        let property = target
            .property
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PUSH_KEY);
        if !existing.data.contains_key(property) {
            return Ok(());
        }
        if existing.data.len() > 1 {
            let mut raw = existing.raw;
            if let Some(data) = raw.get_mut("data").and_then(Value::as_object_mut) {
                data.remove(property);
            }
            return self.update(&ns, name, &raw).await;
        }
        self.full_delete(&ns, name).await
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let meta = secret::push_meta(target.metadata.as_ref())?;
        let ns = self.namespace_for(meta.as_ref())?;
        let Some(existing) = self.get(&ns, &target.remote_key).await? else {
            return Ok(false);
        };
        Ok(match target.property.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => existing.data.contains_key(p),
            None => true,
        })
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        if self.referent {
            return Ok(Validation::Unknown);
        }
        let ns = self.remote_namespace.clone();
        let rules = self
            .send(
                "CreateSelfSubjectRulesReview",
                Method::POST,
                &[
                    "apis",
                    "authorization.k8s.io",
                    "v1",
                    "selfsubjectrulesreviews",
                ],
                &[],
                Some(&json!({
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectRulesReview",
                    "spec": {"namespace": ns},
                })),
                "could not verify if client is valid: create SelfSubjectRulesReview",
            )
            .await?
            .unwrap_or(Value::Null);
        if rules_allow_get_secrets(&rules) {
            return Ok(Validation::Ready);
        }
        let access = self
            .send(
                "CreateSelfSubjectAccessReview",
                Method::POST,
                &["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"],
                &[],
                Some(&json!({
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": {"resource": "secrets", "namespace": ns, "verb": "get"}},
                })),
                "could not verify if client is valid: create SelfSubjectAccessReview",
            )
            .await?
            .unwrap_or(Value::Null);
        if access.pointer("/status/allowed").and_then(Value::as_bool) == Some(true) {
            return Ok(Validation::Ready);
        }
        Err(ProviderError::PermissionDenied(format!(
            "client is not allowed to get secrets in namespace {ns:?}"
        )))
    }

    fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }
}

/// Whether a SelfSubjectRulesReview grants `get` on `secrets` of the core group (or `*`).
fn rules_allow_get_secrets(review: &Value) -> bool {
    let has = |rule: &Value, field: &str, wanted: &[&str]| -> Option<bool> {
        let list = rule.get(field)?.as_array()?;
        Some(
            list.iter()
                .filter_map(Value::as_str)
                .any(|v| wanted.contains(&v)),
        )
    };
    review
        .pointer("/status/resourceRules")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules.iter().any(|rule| {
                has(rule, "resources", &["secrets", "*"]) == Some(true)
                    && has(rule, "verbs", &["get", "*"]) == Some(true)
                    && match rule.get("apiGroups").and_then(Value::as_array) {
                        None => true,
                        Some(groups) if groups.is_empty() => true,
                        Some(_) => has(rule, "apiGroups", &["", "*"]) == Some(true),
                    }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_reviews() {
        let review = |rules: Value| json!({"status": {"resourceRules": rules}});
        assert!(rules_allow_get_secrets(&review(
            json!([{"verbs": ["get"], "resources": ["secrets"]}])
        )));
        assert!(rules_allow_get_secrets(&review(
            json!([{"verbs": ["*"], "resources": ["*"], "apiGroups": ["*"]}])
        )));
        assert!(rules_allow_get_secrets(&review(
            json!([{"verbs": ["get", "list"], "resources": ["secrets"], "apiGroups": [""]}])
        )));
        assert!(!rules_allow_get_secrets(&review(
            json!([{"verbs": ["update"], "resources": ["secrets"]}])
        )));
        assert!(!rules_allow_get_secrets(&review(
            json!([{"verbs": ["get"], "resources": ["secrets"], "apiGroups": ["apps"]}])
        )));
        assert!(!rules_allow_get_secrets(&Value::Null));
    }
}
