//! The Webhook generator: one HTTP call whose JSON answer becomes the generated keys, as
//! upstream's generator (on its webhook provider code) makes it.
//!
//! Spec fields: `url`, `method` (GET when empty), `headers`, `body`, `timeout` (a Go
//! duration), `result.jsonPath`, `secrets[]` (`name`, `secretRef{name, key}`), `caBundle`,
//! `caProvider`. `auth.ntlm` is refused (see below).
//!
//! * `url`, `body` and each header value are Go templates (the external-secrets function map,
//!   a missing key prints `<no value>` as upstream's do). Their data holds one map per
//!   `secrets[]` entry, under its `name`: every key of the Secret `secretRef.name` in the
//!   ExternalSecret's namespace with its value (`{{ .creds.token }}`). As upstream, each such
//!   Secret must carry the label `external-secrets.io/type: webhook`, and `secretRef.key` and
//!   `secretRef.namespace` are not read.
//! * The answer must be 2xx (404 is "Secret does not exist", 304 "not modified", others
//!   "endpoint gave error <status>"). Its body is JSON; `result.jsonPath` (RFC 9535 syntax)
//!   picks a part of it: a path that can only select one value (no wildcard, filter, slice,
//!   union or `..`) gives that value, others the array of what they select. A string result is
//!   parsed as JSON again. The result must be a JSON object; each member is one key: strings
//!   as they are, numbers in plain decimal, `true`/`false`, null empty, objects and arrays as
//!   Go's `json.Marshal` writes them.
//! * `caBundle` (PEM, or base64 of PEM) or `caProvider` (a Secret or ConfigMap key in the
//!   ExternalSecret's namespace) replaces the system roots for an `https` URL.
//!
//! Differences from upstream: `auth.ntlm` is refused with a message instead of negotiating
//! NTLM; without `timeout` a call is given up after [`DEFAULT_TIMEOUT`] (upstream waits
//! forever); an answer larger than [`MAX_ANSWER_BYTES`] is refused. Messages never carry a
//! value from a referenced Secret or from the answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use strongroom_core::crd::external_secrets::{CaProvider, CaProviderType};
use strongroom_core::template::{Engine, Value as TemplateValue, redact};
use strongroom_provider_api::{ProviderEnv, SecretBytes, SecretMap, decode_ca_bundle};

/// How long a call may take when the spec sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer read (a Secret holds at most 1 MiB).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The label a Secret named in `secrets[]` must carry, and its value.
const TYPE_LABEL: (&str, &str) = ("external-secrets.io/type", "webhook");
/// Metric labels of the call, as upstream counts it.
const METRIC: (&str, &str) = ("Webhook", "HTTPRequest");

/// The spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    method: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    auth: Option<serde_json::Value>,
    #[serde(default)]
    body: String,
    timeout: Option<String>,
    #[serde(default)]
    result: ResultSpec,
    #[serde(default)]
    secrets: Vec<SecretEntry>,
    #[serde(rename = "caBundle")]
    ca_bundle: Option<String>,
    ca_provider: Option<CaProvider>,
}

/// `result`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResultSpec {
    #[serde(default)]
    json_path: String,
}

/// One `secrets[]` entry.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SecretEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret_ref: NameOnly,
}

/// A `secretRef`: only its name is read.
#[derive(Deserialize, Default)]
struct NameOnly {
    #[serde(default)]
    name: String,
}

/// Runs the Webhook generator `spec` (as written in the generator object) for an
/// ExternalSecret in `namespace`.
pub async fn generate(
    client: &kube::Client,
    env: &ProviderEnv,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let value = serde_json::Value::Object(spec.clone().into_iter().collect());
    let spec: Spec =
        serde_json::from_value(value).map_err(|e| format!("failed to parse provider spec: {e}"))?;
    let timeout = match spec.timeout.as_deref() {
        Some(t) => strongroom_core::duration::parse_go_duration(t)
            .map_err(|e| format!("failed to parse provider spec: timeout: {e}"))?,
        None => DEFAULT_TIMEOUT,
    };
    let http = http_client(env, namespace, &spec, timeout)
        .await
        .map_err(|e| format!("failed to prepare provider http client: {e}"))?;
    let data = template_data(client, namespace, &spec.secrets).await?;
    let values: Vec<&str> = data
        .values()
        .flat_map(|m| m.values().map(String::as_str))
        .collect();
    let answer = call(&http, env, &spec, &data)
        .await
        .map_err(|e| redact(&e, &values))?;
    secret_map(&answer, &spec.result.json_path)
}

/// The template data: one map per `secrets[]` entry under its name.
async fn template_data(
    client: &kube::Client,
    namespace: &str,
    secrets: &[SecretEntry],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut data: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in secrets {
        let name = &entry.secret_ref.name;
        let secret = api.get(name).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => {
                format!("failed to get webhook secret {name}: secrets {name:?} not found")
            }
            other => format!("failed to get webhook secret {name}: {other}"),
        })?;
        match secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TYPE_LABEL.0))
        {
            None => {
                return Err(format!(
                    "secret {name} does not contain needed label '{}: {}'. Update secret label to use it with webhook",
                    TYPE_LABEL.0, TYPE_LABEL.1
                ));
            }
            Some(v) if v != TYPE_LABEL.1 => {
                return Err(format!("secret {name} type is not '{}'", TYPE_LABEL.1));
            }
            Some(_) => {}
        }
        let values = data.entry(entry.name.clone()).or_default();
        for (k, v) in secret.data.unwrap_or_default() {
            values.insert(k, String::from_utf8_lossy(&v.0).into_owned());
        }
    }
    Ok(data)
}

/// Renders one template of the spec (`what` names it in messages).
fn render(
    what: &str,
    text: &str,
    data: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let dot = TemplateValue::Map(
        data.iter()
            .map(|(name, values)| {
                let inner: HashMap<String, TemplateValue> = values
                    .iter()
                    .map(|(k, v)| (k.clone(), TemplateValue::String(v.clone())))
                    .collect();
                (name.clone(), TemplateValue::Map(inner))
            })
            .collect(),
    );
    let secrets: Vec<&str> = data
        .values()
        .flat_map(|m| m.values().map(String::as_str))
        .collect();
    Engine::external_secrets()
        .with_missing_key_error(false)
        .render("webhooktemplate", text, dot, &secrets)
        .map_err(|e| format!("failed to parse {what}: {e}"))
}

/// Makes the call and returns the answer's body (a 2xx answer, else an error).
async fn call(
    http: &reqwest::Client,
    env: &ProviderEnv,
    spec: &Spec,
    data: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let method = if spec.method.is_empty() {
        "GET"
    } else {
        spec.method.as_str()
    };
    let url = render("url", &spec.url, data)?;
    let body = render("body", &spec.body, data)?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("failed to create request: invalid method {method:?}"))?;
    let url = reqwest::Url::parse(&url)
        .map_err(|e| format!("failed to create request: the rendered url is not a URL: {e}"))?;
    let mut request = http.request(method.clone(), url);
    for (name, template) in &spec.headers {
        let value = render(&format!("header {name}"), template, data)?;
        let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("failed to create request: invalid header name {name:?}"))?;
        let value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| format!("failed to create request: invalid value for header {name}"))?;
        request = request.header(header, value);
    }
    if spec.auth.as_ref().is_some_and(|a| a.get("ntlm").is_some()) {
        return Err("auth.ntlm is not supported by this controller".into());
    }
    if !body.is_empty() || !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) {
        request = request.body(body);
    }
    let sent = request.send().await;
    env.calls.observe(METRIC.0, METRIC.1, sent.is_ok());
    let mut response =
        sent.map_err(|e| format!("failed to call endpoint: {}", super::http_error(e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err("Secret does not exist".into());
    }
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Err("not modified".into());
    }
    if !status.is_success() {
        return Err(format!("endpoint gave error {status}"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("failed to read the answer: {}", super::http_error(e)))?
    {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The HTTP client of one call: the spec's CA (else the system roots) and timeout.
async fn http_client(
    env: &ProviderEnv,
    namespace: &str,
    spec: &Spec,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem(env, namespace, spec).await? {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "the CA bundle is not valid PEM".to_string())?;
            if certs.is_empty() {
                return Err("failed to append cabundle: it holds no PEM certificate".into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("failed to append cabundle: {e}"))?;
            }
        }
        None => {
            let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client setup failed: {e}"))
}

/// The CA PEM the spec names: `caBundle`, else `caProvider` read in `namespace`.
async fn ca_pem(
    env: &ProviderEnv,
    namespace: &str,
    spec: &Spec,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(bundle) = spec.ca_bundle.as_deref().filter(|b| !b.is_empty()) {
        return decode_ca_bundle(bundle, "caBundle")
            .map(Some)
            .map_err(|e| format!("failed to decode ca bundle: {e}"));
    }
    let Some(ca) = &spec.ca_provider else {
        return Ok(None);
    };
    let key = ca.key.as_deref().unwrap_or_default();
    Ok(Some(match ca.type_ {
        CaProviderType::Secret => env
            .credentials
            .secret_key(namespace, &ca.name, key)
            .await
            .map_err(|e| format!("failed to get cert from secret: {e}"))?
            .expose()
            .to_vec(),
        CaProviderType::ConfigMap => env
            .credentials
            .config_map_key(namespace, &ca.name, key)
            .await
            .map_err(|e| format!("failed to get cert from configmap: {e}"))?
            .into_bytes(),
    }))
}

/// Whether a JSONPath can select more than one value (its result is then an array).
fn selects_many(path: &str) -> bool {
    let mut in_quote: Option<char> = None;
    let mut depth = 0usize;
    let mut previous = '\0';
    for c in path.chars() {
        match in_quote {
            Some(q) => {
                if c == q && previous != '\\' {
                    in_quote = None;
                }
            }
            None => match c {
                '\'' | '"' => in_quote = Some(c),
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                '*' | '?' => return true,
                '.' if previous == '.' => return true,
                ':' | ',' if depth > 0 => return true,
                _ => {}
            },
        }
        previous = c;
    }
    false
}

/// Go's `%T` of a value `json.Unmarshal` read into `interface{}`.
fn go_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "<nil>",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "float64",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "[]interface {}",
        serde_json::Value::Object(_) => "map[string]interface {}",
    }
}

/// One generated value, as upstream turns a JSON member into bytes.
fn member_bytes(value: &serde_json::Value) -> Result<SecretBytes, String> {
    Ok(match value {
        serde_json::Value::String(s) => SecretBytes::from(s.as_str()),
        serde_json::Value::Null => SecretBytes::from(""),
        serde_json::Value::Bool(b) => SecretBytes::from(b.to_string().as_str()),
        serde_json::Value::Number(n) => {
            let f = n.as_f64().ok_or("a number does not fit a float64")?;
            SecretBytes::from(f.to_string().as_str())
        }
        other => SecretBytes::from(
            strongroom_core::template::go_json(other, true)
                .ok_or("a value cannot be written as JSON")?
                .as_str(),
        ),
    })
}

/// The generated keys from the answer `body`, picked by `json_path` when set.
fn secret_map(body: &[u8], json_path: &str) -> Result<SecretMap, String> {
    let mut data: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("failed to parse response json: {e}"))?;
    if !json_path.is_empty() {
        use jsonpath_rust::JsonPath;
        let found = data
            .query(json_path)
            .map_err(|e| format!("failed to get response path {json_path}: {e}"))?;
        data = if selects_many(json_path) {
            serde_json::Value::Array(found.into_iter().cloned().collect())
        } else {
            match found.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(format!(
                        "failed to get response path {json_path}: it selects nothing"
                    ));
                }
            }
        };
    }
    if let serde_json::Value::String(text) = &data {
        data = serde_json::from_str(text)
            .map_err(|e| format!("failed to parse response json from jsonpath: {e}"))?;
    }
    let serde_json::Value::Object(members) = &data else {
        return Err(format!(
            "failed to get response (wrong type: {})",
            go_type(&data)
        ));
    };
    members
        .iter()
        .map(|(k, v)| {
            member_bytes(v)
                .map(|b| (k.clone(), b))
                .map_err(|e| format!("failed to get response for key '{k}': {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(m: &SecretMap, k: &str) -> String {
        String::from_utf8_lossy(m[k].expose()).into_owned()
    }

    #[test]
    fn answers_become_keys_as_upstream_converts_them() {
        let body = br#"{"s": "x", "n": 42, "f": 1.5, "big": 1e21, "b": true, "z": null,
            "o": {"b": 1, "a": "<&>"}, "l": [1, "two"]}"#;
        let m = secret_map(body, "").unwrap();
        assert_eq!(text(&m, "s"), "x");
        assert_eq!(text(&m, "n"), "42");
        assert_eq!(text(&m, "f"), "1.5");
        assert_eq!(text(&m, "big"), "1000000000000000000000");
        assert_eq!(text(&m, "b"), "true");
        assert_eq!(text(&m, "z"), "");
        assert_eq!(text(&m, "o"), r#"{"a":"\u003c\u0026\u003e","b":1}"#);
        assert_eq!(text(&m, "l"), r#"[1,"two"]"#);
    }

    #[test]
    fn json_paths_pick_one_value_or_many() {
        let body = br#"{"data": {"token": "t"}, "wrapped": "{\"k\": \"v\"}", "list": [{"a": 1}]}"#;
        assert_eq!(text(&secret_map(body, "$.data").unwrap(), "token"), "t");
        assert_eq!(text(&secret_map(body, "$.wrapped").unwrap(), "k"), "v");
        assert_eq!(text(&secret_map(body, "$.list[0]").unwrap(), "a"), "1");
        let e = secret_map(body, "$.list[*]").err().unwrap_or_default();
        assert_eq!(e, "failed to get response (wrong type: []interface {})");
        let e = secret_map(body, "$.nope").err().unwrap_or_default();
        assert!(e.starts_with("failed to get response path $.nope"), "{e}");
        let e = secret_map(b"[1]", "").err().unwrap_or_default();
        assert_eq!(e, "failed to get response (wrong type: []interface {})");
        let e = secret_map(b"not json canary", "").err().unwrap_or_default();
        assert!(e.starts_with("failed to parse response json:") && !e.contains("canary"));
        assert!(selects_many("$..a") && selects_many("$.a[0:2]") && selects_many("$['a','b']"));
        assert!(!selects_many("$['a.b*']") && !selects_many("$.a[0].b"));
    }

    #[test]
    fn templates_read_the_secrets_and_print_no_value_for_missing_keys() {
        let data = BTreeMap::from([(
            "creds".to_string(),
            BTreeMap::from([("token".to_string(), "s3cr3t".to_string())]),
        )]);
        let out = render(
            "url",
            "http://h/{{ .creds.token | upper }}/{{ .creds.nope }}",
            &data,
        );
        assert_eq!(out.unwrap(), "http://h/S3CR3T/<no value>");
        let e = render("body", "{{ fail .creds.token }}", &data)
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("failed to parse body:") && !e.contains("s3cr3t"),
            "{e}"
        );
    }
}
