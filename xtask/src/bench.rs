//! Benchmarks that compare against a reference measured in the same run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Seal/unseal with RSA-4096 (`crates/core/benches/sealing.rs`), next to `openssl speed rsa4096` on one core.
pub fn crypto(root: &Path) -> anyhow::Result<()> {
    let openssl_before = openssl_rsa4096_sign_per_sec()?;
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["bench", "-p", "strongroom-core", "--bench", "sealing"])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("cargo bench failed");
    }
    let printed = String::from_utf8_lossy(&output.stdout);
    let openssl_after = openssl_rsa4096_sign_per_sec()?;
    let openssl = (openssl_before + openssl_after) / 2.0;
    let seal = mean_ns(&printed, "rsa4096/seal")?;
    let unseal = mean_ns(&printed, "rsa4096/unseal")?;
    let unseal_per_sec = 1e9 / unseal;
    println!();
    println!(
        "openssl speed rsa4096 private ops/s: {openssl_before:.1} (before), {openssl_after:.1} (after)"
    );
    println!(
        "seal one value:   {:.1} µs  ({:.0}/s)",
        seal / 1e3,
        1e9 / seal
    );
    println!(
        "unseal one value: {:.2} ms  ({unseal_per_sec:.1}/s)",
        unseal / 1e6
    );
    println!(
        "unseal / openssl private ops: {:.2} (required >= 0.80)",
        unseal_per_sec / openssl
    );
    Ok(())
}

fn openssl_rsa4096_sign_per_sec() -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "5", "rsa4096"])
        .output()
        .context("running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rsa 4096 bits"))
        .context("openssl speed printed no rsa 4096 line")?;
    // "rsa 4096 bits 0.004637s 0.000070s    215.7  14206.4"
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields
        .get(5)
        .context("short openssl speed line")?
        .parse::<f64>()
        .context("parsing openssl sign/s")
}

/// The mean of `bench <id> mean_ns=<n> ...` in the sealing bench's output.
fn mean_ns(printed: &str, id: &str) -> anyhow::Result<f64> {
    let prefix = format!("bench {id} mean_ns=");
    let line = printed
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .with_context(|| format!("the sealing bench printed no {id} figure"))?;
    line.split_whitespace()
        .next()
        .context("empty figure")?
        .parse()
        .with_context(|| format!("parsing the {id} figure"))
}

/// devcluster throughput and latency (`crates/devcluster/benches/api.rs`).
pub fn devcluster(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["bench", "-p", "strongroom-devcluster", "--bench", "api"])
        .status()?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    Ok(())
}

/// The sealed-secrets controller on devcluster (`crates/sealed-secrets/benches/unseal.rs`),
/// with `openssl speed rsa4096` measured in the same run as the single-core reference.
pub fn sealed(root: &Path) -> anyhow::Result<()> {
    let openssl = openssl_rsa4096_sign_per_sec()?;
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "strongroom-sealed-secrets",
            "--bench",
            "unseal",
        ])
        .status()?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    println!(
        "single-core reference: openssl speed rsa4096 {openssl:.1} private ops/s (2 cores here)"
    );
    Ok(())
}

/// `cargo xtask bench reloader`: the reloader binary on devcluster (see the bench's doc).
pub fn reloader(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["bench", "-p", "strongroom-reloader", "--bench", "reload"])
        .status()?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    Ok(())
}

/// `cargo xtask bench external-secrets`: the controller with 1,000 (or `BENCH_N`)
/// ExternalSecrets over 100 remote keys: sync time, provider and API calls, memory, idle CPU.
pub fn external_secrets(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("cargo")
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "strongroom-external-secrets",
            "--bench",
            "sync",
        ])
        .status()?;
    if !status.success() {
        bail!("cargo bench failed");
    }
    Ok(())
}
