//! Command-line flags, named and defaulted as upstream kubeseal's. Every flag can also be
//! set through `SEALED_SECRETS_<FLAG>`; an explicit flag wins.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use strongroom_core::sealing::SealingScope;

/// Output format of sealed objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Pretty JSON (upstream default).
    Json,
    /// YAML, each document preceded by `---`.
    Yaml,
}

/// `kubeseal`: encrypt Kubernetes Secrets into SealedSecrets that only the controller can open.
/// A flag value that never shows in `Debug` output (a token, a password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the flag was left empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl std::str::FromStr for Sensitive {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

#[derive(Debug, Parser)]
#[command(name = "kubeseal", version, about, disable_version_flag = true)]
pub struct Args {
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,

    /// Certificate file or URL (http://, https://, file://) to seal with; overrides --controller-*.
    #[arg(long, env = "SEALED_SECRETS_CERT", default_value = "")]
    pub cert: String,

    /// Seal even when the certificate has expired (upstream has no such override).
    #[arg(long, env = "SEALED_SECRETS_ALLOW_EXPIRED_CERT")]
    pub allow_expired_cert: bool,

    /// Name of the controller's Service.
    #[arg(
        long,
        env = "SEALED_SECRETS_CONTROLLER_NAME",
        default_value = "sealed-secrets-controller"
    )]
    pub controller_name: String,

    /// Namespace of the controller's Service.
    #[arg(
        long,
        env = "SEALED_SECRETS_CONTROLLER_NAMESPACE",
        default_value = "kube-system"
    )]
    pub controller_namespace: String,

    /// Output format: json or yaml.
    #[arg(
        short = 'o',
        long = "format",
        env = "SEALED_SECRETS_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub format: Format,

    /// Input file with one or more Secrets (YAML or JSON); stdin when empty.
    #[arg(short = 'f', long = "secret-file", env = "SEALED_SECRETS_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,

    /// Output file, written atomically; stdout when empty. `.yaml`/`.yml` forces YAML.
    #[arg(
        short = 'w',
        long = "sealed-secret-file",
        env = "SEALED_SECRETS_SEALED_SECRET_FILE"
    )]
    pub sealed_secret_file: Option<PathBuf>,

    /// Write the controller's current certificate.
    #[arg(long, env = "SEALED_SECRETS_FETCH_CERT")]
    pub fetch_cert: bool,

    /// Seal a Secret with no data.
    #[arg(long, env = "SEALED_SECRETS_ALLOW_EMPTY_DATA")]
    pub allow_empty_data: bool,

    /// Ask the controller whether each input SealedSecret can be decrypted.
    #[arg(long, env = "SEALED_SECRETS_VALIDATE")]
    pub validate: bool,

    /// Seal the input into this SealedSecret file, merging with what it holds.
    #[arg(long, env = "SEALED_SECRETS_MERGE_INTO")]
    pub merge_into: Option<PathBuf>,

    /// Seal one raw value (stdin or --from-file) and print bare base64.
    #[arg(long, env = "SEALED_SECRETS_RAW")]
    pub raw: bool,

    /// With --raw: the file holding the value, as `[key=]path`.
    #[arg(long, env = "SEALED_SECRETS_FROM_FILE")]
    pub from_file: Vec<String>,

    /// Name to seal for: required with --raw in strict scope; overrides the input's name.
    #[arg(long, env = "SEALED_SECRETS_NAME", default_value = "")]
    pub name: String,

    /// Scope: strict, namespace-wide or cluster-wide; the input's annotations when unset.
    #[arg(long, env = "SEALED_SECRETS_SCOPE")]
    pub scope: Option<SealingScope>,

    /// Re-encrypt each input SealedSecret with the controller's newest key.
    #[arg(long, visible_alias = "rotate", env = "SEALED_SECRETS_RE_ENCRYPT")]
    pub re_encrypt: bool,

    /// Decrypt SealedSecrets offline with private keys (disaster recovery).
    #[arg(long, env = "SEALED_SECRETS_RECOVERY_UNSEAL")]
    pub recovery_unseal: bool,

    /// Private keys for --recovery-unseal: PEM files, key Secrets or a List backup (comma list or repeated).
    #[arg(
        long,
        env = "SEALED_SECRETS_RECOVERY_PRIVATE_KEY",
        value_delimiter = ','
    )]
    pub recovery_private_key: Vec<PathBuf>,

    /// Path to the kubeconfig file.
    #[arg(long, env = "SEALED_SECRETS_KUBECONFIG", default_value = "")]
    pub kubeconfig: String,

    /// Kubeconfig context to use.
    #[arg(long, default_value = "")]
    pub context: String,

    /// Kubeconfig cluster to use.
    #[arg(long, default_value = "")]
    pub cluster: String,

    /// Kubeconfig user to use.
    #[arg(long, default_value = "")]
    pub user: String,

    /// Namespace of the Secret to seal (must match the input's, when both are set).
    #[arg(
        short = 'n',
        long,
        env = "SEALED_SECRETS_NAMESPACE",
        default_value = ""
    )]
    pub namespace: String,

    /// API server address.
    #[arg(long, default_value = "")]
    pub server: String,

    /// Bearer token for the API server.
    #[arg(long, default_value = "")]
    pub token: Sensitive,

    /// User to impersonate.
    #[arg(long, default_value = "")]
    pub r#as: String,

    /// Groups to impersonate.
    #[arg(long)]
    pub as_group: Vec<String>,

    /// UID to impersonate.
    #[arg(long, default_value = "")]
    pub as_uid: String,

    /// CA certificate file for the API server.
    #[arg(long, default_value = "")]
    pub certificate_authority: String,

    /// Client certificate file.
    #[arg(long, default_value = "")]
    pub client_certificate: String,

    /// Client key file.
    #[arg(long, default_value = "")]
    pub client_key: String,

    /// Skip TLS verification of the API server.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Server name for TLS verification.
    #[arg(long, default_value = "")]
    pub tls_server_name: String,

    /// Basic-auth user name.
    #[arg(long, default_value = "")]
    pub username: String,

    /// Basic-auth password.
    #[arg(long, default_value = "")]
    pub password: Sensitive,

    /// Timeout of API requests (e.g. 30s).
    #[arg(long, default_value = "0")]
    pub request_timeout: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_tokens_and_passwords() {
        let args = Args::parse_from([
            "kubeseal",
            "--token",
            "canary-token-5e1f",
            "--password",
            "canary-password-77a0",
            "--username",
            "alice",
        ]);
        let shown = format!("{args:?}");
        assert!(!shown.contains("canary-token-5e1f"), "{shown}");
        assert!(!shown.contains("canary-password-77a0"), "{shown}");
        assert!(shown.contains("alice"), "other flags still show: {shown}");
        assert_eq!(args.token.expose(), "canary-token-5e1f");
    }
}
