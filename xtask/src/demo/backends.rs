//! The real provider backends in the demo, when `cargo xtask tools` has installed them into
//! `target/tools/backends`: an OpenBao dev server (the Vault API) and moto (AWS Secrets
//! Manager), each seeded with one value that an ExternalSecret then syncs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};

use super::{Processes, free_port, http_status, wait};

/// The dev server's root token (a demo on loopback only).
const BAO_TOKEN: &str = "demo-root";

/// The backends that started.
#[derive(Default)]
pub struct Backends {
    /// OpenBao's address, `http://127.0.0.1:PORT`.
    pub openbao: Option<String>,
    /// moto's endpoint, `http://127.0.0.1:PORT`.
    pub moto: Option<String>,
}

/// The stores, credentials and ExternalSecrets that read from the started backends.
pub fn manifests(b: &Backends) -> Vec<String> {
    let mut docs = Vec::new();
    if let Some(addr) = &b.openbao {
        docs.push(format!(
            r#"{{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "openbao-token", "namespace": "demo"}}, "stringData": {{"token": "{BAO_TOKEN}"}}}}"#
        ));
        docs.push(format!(
            r#"{{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {{"name": "openbao", "namespace": "demo"}},
 "spec": {{"provider": {{"vault": {{"server": "{addr}", "path": "secret", "version": "v2",
  "auth": {{"tokenSecretRef": {{"name": "openbao-token", "key": "token"}}}}}}}}}}}}"#
        ));
        docs.push(external_secret(
            "from-openbao",
            "openbao",
            "app/db",
            Some("password"),
        ));
    }
    if b.moto.is_some() {
        docs.push(
            r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-creds", "namespace": "demo"}, "stringData": {"id": "demo", "secret": "demo"}}"#.to_string(),
        );
        docs.push(
            r#"{"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "moto", "namespace": "demo"},
 "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "us-east-1",
  "auth": {"secretRef": {"accessKeyIDSecretRef": {"name": "aws-creds", "key": "id"},
   "secretAccessKeySecretRef": {"name": "aws-creds", "key": "secret"}}}}}}}"#
                .to_string(),
        );
        docs.push(external_secret("from-moto", "moto", "demo/api-key", None));
    }
    docs
}

fn external_secret(name: &str, store: &str, key: &str, property: Option<&str>) -> String {
    let property = property
        .map(|p| format!(r#", "property": "{p}""#))
        .unwrap_or_default();
    format!(
        r#"{{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {{"name": "{name}", "namespace": "demo"}},
 "spec": {{"refreshInterval": "1m", "secretStoreRef": {{"name": "{store}", "kind": "SecretStore"}},
  "target": {{"name": "{name}"}}, "data": [{{"secretKey": "value", "remoteRef": {{"key": "{key}"{property}}}}}]}}}}"#
    )
}

fn bin_dir(root: &Path) -> PathBuf {
    crate::tools::dir(root).join("backends/bin")
}

/// Starts the installed backends and seeds them; prints what it skipped.
pub fn start(root: &Path, dir: &Path, procs: &mut Processes) -> anyhow::Result<Backends> {
    let bin = bin_dir(root);
    let mut backends = Backends::default();
    if bin.join("bao").exists() {
        let port = free_port()?;
        let log = dir.join("openbao.log");
        let child = Command::new(bin.join("bao"))
            .args(["server", "-dev", &format!("-dev-root-token-id={BAO_TOKEN}")])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::null())
            .spawn()
            .context("starting OpenBao")?;
        procs.0.push(("openbao".into(), child));
        wait("OpenBao", &log, Duration::from_secs(20), || {
            http_status(port, "/v1/sys/health") == Some(200)
        })?;
        let addr = format!("http://127.0.0.1:{port}");
        let out = Command::new(bin.join("bao"))
            .args([
                "kv",
                "put",
                "-mount=secret",
                "app/db",
                "user=app",
                "password=from-openbao",
            ])
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", BAO_TOKEN)
            .env("HOME", dir)
            .output()?;
        ensure!(
            out.status.success(),
            "bao kv put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("   OpenBao dev server at {addr}: secret/app/db written");
        backends.openbao = Some(addr);
    }
    if bin.join("moto_server").exists() {
        let port = free_port()?;
        let log = dir.join("moto.log");
        let child = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .context("starting moto")?;
        procs.0.push(("moto".into(), child));
        wait("moto", &log, Duration::from_secs(30), || {
            http_status(port, "/moto-api/") == Some(200)
        })?;
        let endpoint = format!("http://127.0.0.1:{port}");
        // boto3 comes with moto: the AWS SDK for Python seeds the value
        let seed = "import boto3, sys\n\
            boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                aws_access_key_id='demo', aws_secret_access_key='demo')\\\n\
                .create_secret(Name='demo/api-key', SecretString='from-moto')";
        let out = Command::new(bin.join("python"))
            .args(["-c", seed, &endpoint])
            .output()?;
        ensure!(
            out.status.success(),
            "seeding moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("   moto (AWS Secrets Manager) at {endpoint}: secret demo/api-key created");
        backends.moto = Some(endpoint);
    }
    if backends.openbao.is_none() || backends.moto.is_none() {
        println!(
            "   (OpenBao and moto run when installed: `cargo xtask tools` puts them in {})",
            bin.display()
        );
    }
    Ok(backends)
}
