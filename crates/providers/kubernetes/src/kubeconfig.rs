//! The part of a kubeconfig `authRef` points at that the provider uses: the current context's
//! cluster (server, CA) and user (token or client certificate). Everything that would need the
//! controller's file system or a plugin (file paths, `exec`, `auth-provider`) is refused.

use base64::Engine;
use serde::Deserialize;
use strongroom_provider_api::{ProviderError, SecretBytes};

/// How a kubeconfig user authenticates.
#[derive(Debug)]
pub(crate) enum KubeconfigAuth {
    /// `user.token`.
    Token(SecretBytes),
    /// `user.client-certificate-data` and `user.client-key-data` (PEM).
    Cert {
        /// Certificate chain PEM.
        cert: SecretBytes,
        /// Private key PEM.
        key: SecretBytes,
    },
}

/// What the provider takes from a kubeconfig.
#[derive(Debug)]
pub(crate) struct Kubeconfig {
    /// `cluster.server`.
    pub server: String,
    /// `cluster.certificate-authority-data`, decoded (PEM), if given.
    pub ca_pem: Option<Vec<u8>>,
    /// The user's credentials.
    pub auth: KubeconfigAuth,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    #[serde(default = "Option::default")]
    value: Option<T>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(default)]
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    token: Option<String>,
    token_file: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    client_certificate: Option<String>,
    client_key: Option<String>,
    exec: Option<serde_yaml_ng::Value>,
    auth_provider: Option<serde_yaml_ng::Value>,
    username: Option<String>,
}

#[derive(Deserialize, Default)]
struct Context {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(format!("kubeconfig of authRef: {}", msg.into()))
}

fn b64(field: &str, value: &str) -> Result<Vec<u8>, ProviderError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| invalid(format!("{field} is not valid base64")))
}

/// Parses a kubeconfig and picks its current context. Messages name fields, never values.
pub(crate) fn parse(text: &[u8]) -> Result<Kubeconfig, ProviderError> {
    // serde_yaml_ng's errors quote the offending input: keep them out of the message.
    let raw: Raw = serde_yaml_ng::from_slice(text)
        .map_err(|_| invalid("not a valid kubeconfig (YAML or JSON)"))?;
    if raw.current_context.is_empty() {
        return Err(invalid("current-context is not set"));
    }
    let context = raw
        .contexts
        .iter()
        .find(|c| c.name == raw.current_context)
        .and_then(|c| c.value.as_ref())
        .ok_or_else(|| {
            invalid(format!(
                "current-context {:?} names no context",
                raw.current_context
            ))
        })?;
    let cluster = raw
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.value.as_ref())
        .ok_or_else(|| invalid(format!("context names no cluster {:?}", context.cluster)))?;
    let user = raw
        .users
        .iter()
        .find(|u| u.name == context.user)
        .and_then(|u| u.value.as_ref())
        .ok_or_else(|| invalid(format!("context names no user {:?}", context.user)))?;

    if cluster.server.is_empty() {
        return Err(invalid("cluster.server is empty"));
    }
    if cluster.insecure_skip_tls_verify {
        return Err(invalid(
            "insecure-skip-tls-verify is not supported: give certificate-authority-data",
        ));
    }
    if cluster.certificate_authority.is_some() && cluster.certificate_authority_data.is_none() {
        return Err(invalid(
            "certificate-authority (a file path) is not supported: use certificate-authority-data",
        ));
    }
    let ca_pem = cluster
        .certificate_authority_data
        .as_deref()
        .map(|d| b64("certificate-authority-data", d))
        .transpose()?;

    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(invalid(
            "exec and auth-provider users are not supported: use a token or a client certificate",
        ));
    }
    let auth = match (
        &user.token,
        &user.client_certificate_data,
        &user.client_key_data,
    ) {
        (Some(token), None, None) if !token.is_empty() => {
            KubeconfigAuth::Token(SecretBytes::from(token.trim()))
        }
        (None, Some(cert), Some(key)) => KubeconfigAuth::Cert {
            cert: SecretBytes::new(b64("client-certificate-data", cert)?),
            key: SecretBytes::new(b64("client-key-data", key)?),
        },
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid(
                "user has both a token and a client certificate: give exactly one",
            ));
        }
        _ if user.token_file.is_some()
            || user.client_certificate.is_some()
            || user.client_key.is_some() =>
        {
            return Err(invalid(
                "file paths (token-file, client-certificate, client-key) are not supported: \
                 use token or client-certificate-data and client-key-data",
            ));
        }
        _ if user.username.is_some() => {
            return Err(invalid("basic authentication is not supported"));
        }
        _ => {
            return Err(invalid(
                "user has no token and no client-certificate-data/client-key-data pair",
            ));
        }
    };
    Ok(Kubeconfig {
        server: cluster.server.clone(),
        ca_pem,
        auth,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const CONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other:6443
- name: dev
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTg==
contexts:
- name: a
  context: {cluster: other, user: nobody}
- name: b
  context:
    cluster: dev
    user: admin
    namespace: ignored
current-context: b
users:
- name: admin
  user:
    token: sekret-token
"#;

    #[test]
    fn current_context_picks_cluster_and_user() {
        let k = parse(CONFIG.as_bytes()).unwrap();
        assert_eq!(k.server, "https://127.0.0.1:6443");
        assert_eq!(k.ca_pem.as_deref(), Some(b"-----BEGIN".as_slice()));
        match k.auth {
            KubeconfigAuth::Token(t) => assert_eq!(t.expose(), b"sekret-token"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_certificates_are_decoded() {
        let text = CONFIG.replace(
            "token: sekret-token",
            "client-certificate-data: Y2VydA==\n    client-key-data: a2V5",
        );
        match parse(text.as_bytes()).unwrap().auth {
            KubeconfigAuth::Cert { cert, key } => {
                assert_eq!(cert.expose(), b"cert");
                assert_eq!(key.expose(), b"key");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_field_not_the_value() {
        let cases = [
            (
                CONFIG.replace("current-context: b", "current-context: zz"),
                "names no context",
            ),
            (
                CONFIG.replace("current-context: b", ""),
                "current-context is not set",
            ),
            (
                CONFIG.replace("user: admin", "user: ghost"),
                "names no user",
            ),
            (
                CONFIG.replace("token: sekret-token", "exec: {command: aws}"),
                "exec and auth-provider",
            ),
            (
                CONFIG.replace("token: sekret-token", "token-file: /x"),
                "file paths",
            ),
            (
                CONFIG.replace(
                    "certificate-authority-data: LS0tLS1CRUdJTg==",
                    "insecure-skip-tls-verify: true",
                ),
                "insecure-skip-tls-verify",
            ),
            (
                CONFIG.replace("LS0tLS1CRUdJTg==", "sekret-token!!"),
                "certificate-authority-data is not valid base64",
            ),
            ("sekret-token: [".to_string(), "not a valid kubeconfig"),
        ];
        for (text, want) in cases {
            let err = parse(text.as_bytes()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg} should contain {want}");
            assert!(!msg.contains("sekret"), "{msg} leaks a value");
            assert!(matches!(err, ProviderError::InvalidConfig(_)));
        }
    }
}
