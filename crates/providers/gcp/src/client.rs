//! The session client: reads, searches and pushes of one store, sharing one token cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Method;
use serde_json::{Map, Value, json};
use strongroom_provider_api::{
    FindQuery, ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes, SecretMap,
    SecretsClient, StoreContext, Validation, go_json, json_property,
};

use crate::api::{Api, Failure};
use crate::config::{self, invalid};
use crate::endpoints::Endpoints;
use crate::token::Tokens;

/// The label marking secrets a PushSecret created (upstream's).
const MANAGED_BY_KEY: &str = "managed-by";
const MANAGED_BY_VALUE: &str = "external-secrets";

/// A Secret Manager session for one store.
pub struct GcpSecretsClient {
    /// `None` for a referent ClusterSecretStore validated without a reader.
    inner: Option<Inner>,
}

struct Inner {
    api: Api,
    project: String,
    location: Option<String>,
    latest_or_fetch: bool,
}

impl std::fmt::Debug for GcpSecretsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("GcpSecretsClient");
        if let Some(i) = &self.inner {
            d.field("project", &i.project)
                .field("location", &i.location)
                .field("endpoint", &i.api.base);
        }
        d.finish_non_exhaustive()
    }
}

impl GcpSecretsClient {
    /// Resolves the store's credentials into a token source (no token is fetched yet).
    pub async fn connect(
        store: &StoreContext,
        env: ProviderEnv,
        endpoints: &Endpoints,
    ) -> Result<Self, ProviderError> {
        let spec = config::spec(store)?;
        if config::unresolvable_referent(store, spec) {
            return Ok(Self { inner: None });
        }
        let location = spec.location.clone().filter(|l| !l.is_empty());
        let http = config::http_client()?;
        let (source, key_project) =
            config::source(store, spec, &env, endpoints, http.clone()).await?;
        let project = match spec
            .project_id
            .clone()
            .filter(|p| !p.is_empty())
            .or(key_project)
        {
            Some(p) => p,
            // Upstream's default for non-static auth: the cluster's project.
            None => crate::auth::metadata_value(&http, endpoints, "project/project-id")
                .await
                .map_err(|e| invalid(format!("projectID is required: {e}")))?,
        };
        let base = endpoints.secret_manager_base(location.as_deref())?;
        Ok(Self {
            inner: Some(Inner {
                api: Api {
                    http,
                    base,
                    tokens: Arc::new(Tokens::new(source)),
                    env,
                },
                project,
                location,
                latest_or_fetch: config::latest_or_fetch(spec),
            }),
        })
    }

    fn inner(&self) -> Result<&Inner, ProviderError> {
        self.inner.as_ref().ok_or_else(|| {
            invalid(
                "this ClusterSecretStore reads its credentials in the ExternalSecret's namespace \
                 (referent authentication), and none is known",
            )
        })
    }
}

/// Whether `key` is a Secret Manager secret id (letters, digits, `-`, `_`; at most 255).
fn check_id(key: &str) -> Result<(), ProviderError> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{key:?} is not a Secret Manager secret id (letters, digits, '-' and '_')"
        )))
    }
}

/// The CRC32C of a payload as Google writes it (an int64 in proto3 JSON: a string).
fn crc_text(data: &[u8]) -> String {
    crc32c::crc32c(data).to_string()
}

/// `payload.data` of an access answer, its `dataCrc32c` checked when present.
fn payload(key: &str, answer: &Value) -> Result<SecretBytes, ProviderError> {
    let p = &answer["payload"];
    let data = match p["data"].as_str() {
        // proto3 JSON leaves out empty bytes.
        None => Vec::new(),
        Some(d) => B64
            .decode(d)
            .map_err(|_| ProviderError::Malformed(format!("payload of {key:?} is not base64")))?,
    };
    if let Some(crc) = p.get("dataCrc32c").filter(|c| !c.is_null()) {
        let given = crc.as_str().map_or_else(|| crc.to_string(), str::to_string);
        if given != crc_text(&data) {
            return Err(ProviderError::Malformed(format!(
                "payload of {key:?} failed its CRC32C check (corrupted in transit)"
            )));
        }
    }
    Ok(SecretBytes::new(data))
}

/// The key of a resource name (`projects/N[/locations/L]/secrets/KEY`).
fn trim_name(name: &str) -> &str {
    name.rsplit_once("/secrets/").map_or(name, |(_, k)| k)
}

/// Labels or annotations of a Secret resource.
fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A map as Go's json.Marshal writes a `map[string]string` (a nil map is `null`).
fn go_map(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() { Value::Null } else { json!(m) }
}

/// `metadataPolicy: Fetch`: labels and annotations, as upstream returns them.
fn metadata_value(
    key: &str,
    secret: &Value,
    property: Option<&str>,
) -> Result<SecretBytes, ProviderError> {
    let labels = string_map(&secret["labels"]);
    let annotations = string_map(&secret["annotations"]);
    let to_json = |v: &Value| {
        go_json(v)
            .map(SecretBytes::new)
            .map_err(|_| ProviderError::Malformed("metadata is not serializable".into()))
    };
    match property.filter(|p| !p.is_empty()) {
        None => to_json(&json!({"annotations": go_map(&annotations), "labels": go_map(&labels)})),
        Some("annotations") => to_json(&go_map(&annotations)),
        Some("labels") => to_json(&go_map(&labels)),
        Some(p) => {
            let (map, name, what) = if let Some(a) = p.strip_prefix("annotations.") {
                (&annotations, a, "annotation")
            } else if let Some(l) = p.strip_prefix("labels.") {
                (&labels, l, "label")
            } else {
                return Err(invalid(format!(
                    "invalid property {p}: metadata property should start with either annotations or labels"
                )));
            };
            map.get(name)
                .map(|v| SecretBytes::from(v.as_str()))
                .ok_or_else(|| ProviderError::not_found_in(key, format!("{what} {name:?}")))
        }
    }
}

/// Sets `path` (gjson-style dots, `\.` escapes) in a JSON document to the string `value`,
/// as upstream's sjson does for property pushes.
fn set_property(
    original: Option<&[u8]>,
    path: &str,
    value: &str,
) -> Result<Vec<u8>, ProviderError> {
    let mut doc = match original {
        None => Value::Object(Map::new()),
        Some([]) => Value::Object(Map::new()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|_| {
            invalid("the remote value is not JSON, so a property cannot be pushed into it")
        })?,
    };
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            '.' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let mut node = &mut doc;
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(obj) = node else {
            return Err(invalid("property path could not be set"));
        };
        if i + 1 == parts.len() {
            obj.insert(part.clone(), Value::String(value.to_string()));
            break;
        }
        node = obj
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    serde_json::to_vec(&doc).map_err(|_| invalid("property push could not be serialized"))
}

/// What a PushSecret's `data[].metadata` asks of a GCP secret (upstream's
/// `PushSecretMetadataSpec`).
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMeta {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    merge_policy: Option<String>,
    #[serde(default)]
    cmek_key_name: Option<String>,
    #[serde(default)]
    replication_location: Option<String>,
    #[serde(default)]
    replication_locations: Vec<String>,
}

fn push_meta(metadata: Option<&Value>) -> Result<Option<PushMeta>, ProviderError> {
    let Some(m) = metadata.filter(|m| !m.is_null()) else {
        return Ok(None);
    };
    let spec = m.get("spec").cloned().unwrap_or(Value::Null);
    if spec.is_null() {
        return Ok(Some(PushMeta::default()));
    }
    serde_json::from_value(spec)
        .map(Some)
        .map_err(|e| invalid(format!("failed to parse PushSecret metadata: {e}")))
}

impl Inner {
    fn parent(&self) -> String {
        match &self.location {
            Some(l) => format!("projects/{}/locations/{l}", self.project),
            None => format!("projects/{}", self.project),
        }
    }

    fn secret_path(&self, key: &str) -> String {
        format!("{}/secrets/{key}", self.parent())
    }

    async fn get_secret_resource(&self, key: &str) -> Result<Option<Value>, ProviderError> {
        check_id(key)?;
        match self
            .api
            .call("GetSecret", Method::GET, &self.secret_path(key), &[], None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(f) if f.is_not_found() => Ok(None),
            Err(f) => Err(f.for_key(key)),
        }
    }

    async fn access_name(&self, key: &str, name: &str) -> Result<SecretBytes, Failure> {
        let answer = self
            .api
            .call(
                "AccessSecretVersion",
                Method::GET,
                &format!("{name}:access"),
                &[],
                None,
            )
            .await?;
        payload(key, &answer).map_err(Failure::Other)
    }

    /// The newest ENABLED version's resource name (upstream's `getLatestEnabledVersion`).
    async fn latest_enabled(&self, key: &str) -> Result<Option<String>, ProviderError> {
        let mut best: Option<(String, String)> = None;
        let mut page = String::new();
        loop {
            let mut q = vec![("filter", "state:ENABLED")];
            if !page.is_empty() {
                q.push(("pageToken", page.as_str()));
            }
            let answer = self
                .api
                .call(
                    "ListSecretVersions",
                    Method::GET,
                    &format!("{}/versions", self.secret_path(key)),
                    &q,
                    None,
                )
                .await
                .map_err(|f| f.for_key(key))?;
            for v in answer["versions"].as_array().into_iter().flatten() {
                let (Some(name), Some(created)) = (v["name"].as_str(), v["createTime"].as_str())
                else {
                    continue;
                };
                if best.as_ref().is_none_or(|(c, _)| created > c.as_str()) {
                    best = Some((created.to_string(), name.to_string()));
                }
            }
            match answer["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => page = t.to_string(),
                None => break,
            }
        }
        Ok(best.map(|(_, name)| name))
    }

    /// The value of `key` at `version` (`latest` when `None`), with upstream's fallback to
    /// the newest enabled version under `LatestOrFetch`.
    async fn access(&self, key: &str, version: Option<&str>) -> Result<SecretBytes, ProviderError> {
        check_id(key)?;
        let version = version.filter(|v| !v.is_empty());
        let name = format!(
            "{}/versions/{}",
            self.secret_path(key),
            version.unwrap_or("latest")
        );
        match self.access_name(key, &name).await {
            Ok(v) => Ok(v),
            Err(f) if self.latest_or_fetch && version.is_none() && f.is_disabled_or_destroyed() => {
                tracing::debug!(
                    key,
                    "latest version disabled or destroyed; fetching the newest enabled one"
                );
                let name = self.latest_enabled(key).await?.unwrap_or(name);
                self.access_name(key, &name)
                    .await
                    .map_err(|f| f.for_key(key))
            }
            Err(f) => Err(f.for_key(key)),
        }
    }

    /// Every secret id under the store's parent matching `filter` (all pages).
    async fn list(&self, filter: Option<&str>) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        let mut page = String::new();
        loop {
            let mut q = vec![("pageSize", "250")];
            if let Some(f) = filter.filter(|f| !f.is_empty()) {
                q.push(("filter", f));
            }
            if !page.is_empty() {
                q.push(("pageToken", page.as_str()));
            }
            let answer = self
                .api
                .call(
                    "ListSecrets",
                    Method::GET,
                    &format!("{}/secrets", self.parent()),
                    &q,
                    None,
                )
                .await
                .map_err(|f| f.for_key(&self.parent()))?;
            for s in answer["secrets"].as_array().into_iter().flatten() {
                if let Some(name) = s["name"].as_str() {
                    out.push(trim_name(name).to_string());
                }
            }
            match answer["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => page = t.to_string(),
                None => break,
            }
        }
        Ok(out)
    }

    async fn create(&self, key: &str, meta: Option<&PushMeta>) -> Result<Value, ProviderError> {
        let mut secret = json!({"labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE}});
        if self.location.is_none() {
            let locations: Vec<String> = match meta {
                Some(m) if !m.replication_locations.is_empty() => m.replication_locations.clone(),
                Some(m) => m.replication_location.clone().into_iter().collect(),
                None => Vec::new(),
            };
            secret["replication"] = if locations.is_empty() {
                json!({"automatic": {}})
            } else {
                let cmek = meta.and_then(|m| m.cmek_key_name.clone());
                let replicas: Vec<Value> = locations
                    .iter()
                    .map(|l| match &cmek {
                        Some(k) => {
                            json!({"location": l, "customerManagedEncryption": {"kmsKeyName": k}})
                        }
                        None => json!({"location": l}),
                    })
                    .collect();
                json!({"userManaged": {"replicas": replicas}})
            };
        }
        if let Some(m) = meta.filter(|m| !m.topics.is_empty()) {
            secret["topics"] = Value::Array(m.topics.iter().map(|t| json!({"name": t})).collect());
        }
        self.api
            .call(
                "CreateSecret",
                Method::POST,
                &format!("{}/secrets", self.parent()),
                &[("secretId", key)],
                Some(&secret),
            )
            .await
            .map_err(|f| f.for_key(key))
    }
}

fn not_managed(key: &str) -> ProviderError {
    ProviderError::PermissionDenied(format!(
        "secret {key:?} is not managed by external secrets (no label managed-by=external-secrets): refusing to change it"
    ))
}

fn is_managed(secret: &Value) -> bool {
    secret["labels"][MANAGED_BY_KEY].as_str() == Some(MANAGED_BY_VALUE)
}

#[async_trait]
impl SecretsClient for GcpSecretsClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let inner = self.inner()?;
        if remote.fetch_metadata {
            let secret = inner
                .get_secret_resource(&remote.key)
                .await?
                .ok_or_else(|| ProviderError::not_found(&remote.key))?;
            return metadata_value(&remote.key, &secret, remote.property.as_deref());
        }
        let value = inner.access(&remote.key, remote.version.as_deref()).await?;
        match remote.property.as_deref().filter(|p| !p.is_empty()) {
            None => Ok(value),
            Some(p) => json_property(&remote.key, value.expose(), p),
        }
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let inner = self.inner()?;
        let matcher = query.name_filter()?;
        if matcher.is_none() && query.tags.is_empty() {
            return Err(invalid("find needs name or tags"));
        }
        let mut terms: Vec<String> = query
            .tags
            .iter()
            .map(|(k, v)| format!("labels.{k}={v}"))
            .collect();
        if let Some(p) = query.path.as_deref().filter(|p| !p.is_empty()) {
            terms.push(format!("name:{p}"));
        }
        let filter = terms.join(" ");
        let mut out = SecretMap::new();
        for key in inner.list(Some(&filter)).await? {
            if matcher.as_ref().is_some_and(|m| !m.is_match(&key)) {
                continue;
            }
            if query
                .path
                .as_deref()
                .is_some_and(|p| !p.is_empty() && !key.starts_with(p))
            {
                continue;
            }
            let value = inner.access(&key, None).await?;
            out.insert(key, value);
        }
        Ok(out)
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let inner = self.inner()?;
        let key = &target.remote_key;
        check_id(key)?;
        let property = target.property.as_deref().filter(|p| !p.is_empty());
        let meta = push_meta(target.metadata.as_ref())?;
        if property.is_some() && meta.is_some() {
            return Err(invalid(
                "cannot specify metadata and property at the same time",
            ));
        }
        let secret = match inner.get_secret_resource(key).await? {
            Some(s) => s,
            None => inner.create(key, meta.as_ref()).await?,
        };
        if !is_managed(&secret) {
            return Err(not_managed(key));
        }
        let labels = string_map(&secret["labels"]);
        let annotations = string_map(&secret["annotations"]);
        let (want_labels, want_annotations) = match (&meta, property) {
            (_, Some(_)) => (labels.clone(), annotations.clone()),
            (None, None) => (
                BTreeMap::from([(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string())]),
                BTreeMap::new(),
            ),
            (Some(m), None) => {
                let mut l = m.labels.clone();
                if m.merge_policy.as_deref() == Some("Merge") {
                    l.extend(labels.clone());
                }
                l.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
                (l, m.annotations.clone())
            }
        };
        if want_labels != labels || want_annotations != annotations {
            let body = json!({"labels": want_labels, "annotations": want_annotations});
            inner
                .api
                .call(
                    "UpdateSecret",
                    Method::PATCH,
                    &inner.secret_path(key),
                    &[("updateMask", "labels,annotations")],
                    Some(&body),
                )
                .await
                .map_err(|f| f.for_key(key))?;
        }
        let current = match inner
            .access_name(key, &format!("{}/versions/latest", inner.secret_path(key)))
            .await
        {
            Ok(v) => Some(v),
            Err(f) if f.is_not_found() => None,
            Err(f) => return Err(f.for_key(key)),
        };
        let data = match property {
            None => {
                if current
                    .as_ref()
                    .is_some_and(|c| c.expose() == value.expose())
                {
                    return Ok(());
                }
                value.expose().to_vec()
            }
            Some(p) => {
                let text = std::str::from_utf8(value.expose()).map_err(|_| {
                    invalid(format!(
                        "the value pushed to property {p:?} of {key:?} is not UTF-8"
                    ))
                })?;
                if let Some(c) = &current
                    && let Ok(existing) = json_property(key, c.expose(), p)
                    && existing.expose() == text.as_bytes()
                {
                    return Ok(());
                }
                set_property(current.as_ref().map(SecretBytes::expose), p, text)?
            }
        };
        let body = json!({"payload": {"data": B64.encode(&data), "dataCrc32c": crc_text(&data)}});
        inner
            .api
            .call(
                "AddSecretVersion",
                Method::POST,
                &format!("{}:addVersion", inner.secret_path(key)),
                &[],
                Some(&body),
            )
            .await
            .map_err(|f| f.for_key(key))?;
        Ok(())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let inner = self.inner()?;
        let key = &target.remote_key;
        let Some(secret) = inner.get_secret_resource(key).await? else {
            return Ok(());
        };
        // As upstream: secrets without the label are left alone, silently.
        if !is_managed(&secret) {
            return Ok(());
        }
        let etag = secret["etag"].as_str().unwrap_or_default().to_string();
        let q: Vec<(&str, &str)> = if etag.is_empty() {
            Vec::new()
        } else {
            vec![("etag", etag.as_str())]
        };
        match inner
            .api
            .call(
                "DeleteSecret",
                Method::DELETE,
                &inner.secret_path(key),
                &q,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.is_not_found() => Ok(()),
            Err(f) => Err(f.for_key(key)),
        }
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let inner = self.inner()?;
        match inner.access(&target.remote_key, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        let Some(inner) = &self.inner else {
            return Ok(Validation::Unknown);
        };
        // One token proves the credentials; it is cached for the reads that follow.
        inner.api.tokens.get().await?;
        Ok(Validation::Ready)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn text(b: SecretBytes) -> String {
        String::from_utf8(b.expose().to_vec()).unwrap()
    }

    #[test]
    fn payload_crc_is_checked() {
        let data = b"canary-value";
        let good = json!({"payload": {"data": B64.encode(data), "dataCrc32c": crc_text(data)}});
        assert_eq!(text(payload("k", &good).unwrap()), "canary-value");
        let number =
            json!({"payload": {"data": B64.encode(data), "dataCrc32c": crc32c::crc32c(data)}});
        assert!(payload("k", &number).is_ok());
        let bad = json!({"payload": {"data": B64.encode(data), "dataCrc32c": "1"}});
        let e = payload("k", &bad).unwrap_err();
        assert!(e.to_string().contains("CRC32C") && !e.to_string().contains("canary"));
        assert_eq!(text(payload("k", &json!({"payload": {}})).unwrap()), "");
    }

    #[test]
    fn names_and_ids() {
        assert_eq!(trim_name("projects/123/secrets/db"), "db");
        assert_eq!(trim_name("projects/123/locations/eu/secrets/db"), "db");
        assert!(check_id("db-main_1").is_ok());
        assert!(check_id("a/b").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn metadata_as_upstream() {
        let s = json!({"labels": {"team": "a", "managed-by": "x"}, "annotations": {"note": "n"}});
        assert_eq!(
            text(metadata_value("k", &s, None).unwrap()),
            r#"{"annotations":{"note":"n"},"labels":{"managed-by":"x","team":"a"}}"#
        );
        assert_eq!(
            text(metadata_value("k", &s, Some("labels.team")).unwrap()),
            "a"
        );
        assert_eq!(
            text(metadata_value("k", &s, Some("annotations")).unwrap()),
            r#"{"note":"n"}"#
        );
        assert!(
            metadata_value("k", &s, Some("labels.nope"))
                .unwrap_err()
                .is_not_found()
        );
        assert!(metadata_value("k", &s, Some("other")).is_err());
        assert_eq!(
            text(metadata_value("k", &json!({}), None).unwrap()),
            r#"{"annotations":null,"labels":null}"#
        );
    }

    #[test]
    fn property_pushes_merge() {
        let merged = set_property(Some(br#"{"a":"1","n":{"x":"y"}}"#), "b", "2").unwrap();
        let v: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(v, json!({"a": "1", "b": "2", "n": {"x": "y"}}));
        let nested = set_property(None, "n.z", "3").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&nested).unwrap(),
            json!({"n": {"z": "3"}})
        );
        let escaped = set_property(None, r"tls\.crt", "c").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&escaped).unwrap(),
            json!({"tls.crt": "c"})
        );
        assert!(set_property(Some(b"plain"), "p", "v").is_err());
    }
}
