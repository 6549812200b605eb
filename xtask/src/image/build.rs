//! The static binaries: one `cargo build --release` for the musl target.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::ensure;

use super::Controller;

/// The target every image's binary is built for.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the selected controllers' binaries in one cargo invocation (shared dependencies),
/// with OpenSSL built in when one of them links it. Adds the rustup target when missing.
pub fn binaries(root: &Path, selected: &[Controller], profile: &str) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        let status = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()?;
        ensure!(status.success(), "rustup target add {TARGET} failed");
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "build",
        "--profile",
        profile,
        "--locked",
        "--target",
        TARGET,
    ]);
    for c in selected {
        cmd.args(["-p", c.package, "--bin", c.binary]);
    }
    if selected.iter().any(|c| c.openssl) {
        // OpenSSL's build needs a musl C compiler: Debian's musl-tools
        ensure!(
            Command::new("musl-gcc").arg("--version").output().is_ok(),
            "building OpenSSL for {TARGET} needs musl-gcc: apt-get install musl-tools"
        );
        cmd.args(["--features", "strongroom-core/vendored-openssl"]);
    }
    println!(
        "building {} for {TARGET}",
        selected
            .iter()
            .map(|c| c.binary)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let status = cmd.status()?;
    ensure!(status.success(), "cargo build for {TARGET} failed");
    Ok(())
}

/// Where [`binaries`] puts a controller's executable.
pub fn binary_path(root: &Path, c: &Controller, profile: &str) -> PathBuf {
    let target_dir = crate::target_dir(root);
    let dir = if profile == "dev" { "debug" } else { profile };
    target_dir.join(TARGET).join(dir).join(c.binary)
}
