//! `cargo xtask demo`: the sealing round trip with the real `kubeseal` binary, until the
//! controllers and the embedded dev cluster land.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use strongroom_core::sealing::{KeyGenParams, generate_key_and_cert};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: demo-db
  namespace: demo
type: Opaque
stringData:
  username: app
  password: demo-password-123
";

/// Generates a controller key, seals a Secret in each scope and unseals it offline.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--quiet", "-p", "strongroom-kubeseal"])
        .status()?;
    if !status.success() {
        bail!("building kubeseal failed");
    }
    let kubeseal = root.join("target/debug/kubeseal");
    let dir = root.join("target/demo");
    std::fs::create_dir_all(&dir)?;

    println!("1. generating an RSA-4096 sealing key and certificate (as the controller does)");
    let (key, cert) = generate_key_and_cert(&KeyGenParams::default())?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert.pem)?;
    std::fs::write(&key_path, key.to_pkcs1_pem()?.as_bytes())?;
    std::fs::write(dir.join("secret.yaml"), SECRET)?;
    println!(
        "   key {} valid until {}",
        key.fingerprint(),
        cert.not_after
    );

    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let sealed_path = dir.join(format!("sealed-{scope}.yaml"));
        println!("2. kubeseal --scope {scope} -> {}", sealed_path.display());
        let out = Command::new(&kubeseal)
            .args(["--cert"])
            .arg(&cert_path)
            .args(["--scope", scope, "-o", "yaml", "-f"])
            .arg(dir.join("secret.yaml"))
            .arg("-w")
            .arg(&sealed_path)
            .output()?;
        if !out.status.success() {
            bail!("kubeseal failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        println!("3. kubeseal --recovery-unseal (offline, with the private key)");
        let out = Command::new(&kubeseal)
            .arg("--recovery-unseal")
            .arg("--recovery-private-key")
            .arg(&key_path)
            .arg("-f")
            .arg(&sealed_path)
            .args(["-o", "json"])
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("recovery unseal failed");
        }
        let secret: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("unsealed output is not JSON")?;
        let password = secret["data"]["password"].as_str().unwrap_or_default();
        if password != "ZGVtby1wYXNzd29yZC0xMjM=" {
            bail!("round trip lost the password in {scope} scope");
        }
        println!("   {scope}: unsealed Secret matches the input (2 items)");
    }
    println!("demo complete: files in {}", dir.display());
    Ok(())
}
