//! `cargo xtask image <controller>|all [--no-build] [--smoke] [--profile P]`: each controller
//! as its own OCI image, without a Docker engine. The binaries are built with the `release`
//! profile; CI builds them with `image-check` (release without optimisation) to check the
//! images in a fraction of the time.
//!
//! 1. [`build`]: a static release binary for `x86_64-unknown-linux-musl` (OpenSSL built in
//!    where the controller links it);
//! 2. [`layer`]: one reproducible layer with the binary, CA certificates, `/etc/passwd` and
//!    `/etc/group` for the numeric non-root user, and `/tmp`; no shell;
//! 3. [`layout`]: the OCI image layout under `target/oci/<controller>/` (typed with
//!    `oci-spec`), tagged with the chart's appVersion, timestamps from `SOURCE_DATE_EPOCH`;
//! 4. [`verify`]: every blob's digest and size, the config's `diff_ids`, the user, the
//!    entrypoint and the executable's static linking; then Debian's `oci-image-tool validate`,
//!    `skopeo inspect` and `skopeo copy` to a `docker-archive` tarball when they are installed;
//! 5. `--smoke` ([`smoke`]): runs each image with `umoci` and `runc` as its user on a read-only
//!    root in its own network namespace, against devcluster, and checks `--help` and
//!    `/healthz`.

mod build;
mod layer;
mod layout;
mod smoke;
mod verify;

use std::path::Path;

use anyhow::{Context, bail};

/// One controller's image.
#[derive(Debug, Clone, Copy)]
pub struct Controller {
    /// The selector on the command line and the folder under `target/oci/`.
    pub id: &'static str,
    /// The cargo package that has the binary.
    pub package: &'static str,
    /// The binary, installed as `/usr/local/bin/<binary>` and run as the entrypoint.
    pub binary: &'static str,
    /// The image repository the chart pulls (`image.repository`, with the registry).
    pub repository: &'static str,
    /// The numeric user (and group) it runs as: the one upstream's chart or image uses.
    pub uid: u32,
    /// Ports it listens on (`ExposedPorts`).
    pub ports: &'static [u16],
    /// Whether it links OpenSSL (built in for musl).
    pub openssl: bool,
    /// `org.opencontainers.image.description`.
    pub description: &'static str,
    /// The default port of its `/healthz` (checked by `--smoke`).
    pub health_port: u16,
}

/// The three controllers.
pub const CONTROLLERS: [Controller; 3] = [
    Controller {
        id: "sealed-secrets",
        package: "strongroom-sealed-secrets",
        binary: "sealed-secrets-controller",
        repository: "ghcr.io/strongroom/sealed-secrets-controller",
        uid: 1001,
        ports: &[8080, 8081],
        openssl: true,
        description: "Strongroom sealed-secrets controller: a drop-in for Bitnami Sealed Secrets",
        health_port: 8080,
    },
    Controller {
        id: "external-secrets",
        package: "strongroom-external-secrets",
        binary: "external-secrets-controller",
        repository: "ghcr.io/strongroom/external-secrets",
        uid: 1000,
        ports: &[8080, 8082],
        openssl: true,
        description: "Strongroom external-secrets controller: a drop-in for External Secrets Operator",
        health_port: 8082,
    },
    Controller {
        id: "reloader",
        package: "strongroom-reloader",
        binary: "reloader",
        repository: "ghcr.io/strongroom/reloader",
        uid: 65534,
        ports: &[9090],
        openssl: false,
        description: "Strongroom reloader: a drop-in for Stakater Reloader",
        health_port: 9090,
    },
];

/// The image tag: the workspace version, which is every chart's appVersion.
pub const TAG: &str = env!("CARGO_PKG_VERSION");

/// Runs `cargo xtask image ...`.
pub fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut selected = Vec::new();
    let (mut do_build, mut do_smoke) = (true, false);
    let mut profile = "release";
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--profile" => profile = args.next().context("--profile needs a cargo profile")?,
            "--no-build" => do_build = false,
            "--smoke" => do_smoke = true,
            "all" => selected.extend(CONTROLLERS),
            id => match CONTROLLERS.iter().find(|c| c.id == id) {
                Some(c) => selected.push(*c),
                None => bail!(
                    "unknown controller {id:?}: use sealed-secrets, external-secrets, reloader or all"
                ),
            },
        }
    }
    if selected.is_empty() {
        bail!(
            "usage: cargo xtask image sealed-secrets|external-secrets|reloader|all [--no-build] [--smoke] [--profile P]"
        );
    }
    if do_build {
        build::binaries(root, &selected, profile)?;
    }
    let epoch = source_date_epoch()?;
    let mut report = Vec::new();
    for c in &selected {
        check_chart(root, c)?;
        let binary = build::binary_path(root, c, profile);
        let dir = crate::target_dir(root).join("oci").join(c.id);
        let image = layout::write(root, c, &binary, &dir, epoch)
            .with_context(|| format!("writing the {} image", c.id))?;
        verify::layout(&dir, c).with_context(|| format!("verifying the {} image", c.id))?;
        let archive = verify::with_tools(&dir, c)?;
        println!(
            "image {}: {}:{TAG} {} ({:.1} MiB compressed, {:.1} MiB unpacked) in {}",
            c.id,
            c.repository,
            image.manifest_digest,
            image.compressed as f64 / 1048576.0,
            image.unpacked as f64 / 1048576.0,
            dir.display()
        );
        if let Some(a) = archive {
            println!("  docker-archive (docker load -i): {}", a.display());
        }
        report.push((c, image));
    }
    if do_smoke {
        for (c, _) in &report {
            smoke::run(root, c).with_context(|| format!("smoke test of the {} image", c.id))?;
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (seconds), or 0: every timestamp in the image.
fn source_date_epoch() -> anyhow::Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => Ok(0),
    }
}

/// The chart pulls this image: its `image.repository` (with the registry) and appVersion.
fn check_chart(root: &Path, c: &Controller) -> anyhow::Result<()> {
    let chart_dir = root.join("deploy/charts").join(c.id);
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir.join("values.yaml"))?)?;
    let chart: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir.join("Chart.yaml"))?)?;
    let image = &values["image"];
    let repository = match image["registry"].as_str() {
        Some(registry) => format!("{registry}/{}", image["repository"].as_str().unwrap_or("")),
        None => image["repository"].as_str().unwrap_or("").to_string(),
    };
    let app_version = chart["appVersion"].as_str().unwrap_or("");
    if repository != c.repository || app_version != TAG {
        bail!(
            "the {} chart pulls {repository}:{app_version}, but the image is {}:{TAG}",
            c.id,
            c.repository
        );
    }
    Ok(())
}
