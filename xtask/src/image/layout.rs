//! The OCI image layout: `oci-layout`, `index.json` and `blobs/sha256/*`, with the manifest
//! and config typed by `oci-spec` and written as canonical JSON (keys sorted, no spaces), so
//! two builds of the same commit give the same digests.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    RootFsBuilder,
};
use serde_json::Value;

use super::layer;
use super::{Controller, TAG};

/// Where the CA certificates come from (Debian's ca-certificates bundle).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What [`write`] made.
pub struct Image {
    /// `sha256:` of the manifest (the image's digest).
    pub manifest_digest: String,
    /// Size of the compressed layer.
    pub compressed: u64,
    /// Size of the uncompressed layer.
    pub unpacked: u64,
}

/// JSON with object keys sorted at every level and no white space.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    fn sorted(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    Ok(serde_json::to_vec(&sorted(serde_json::to_value(value)?))?)
}

fn descriptor(media_type: MediaType, bytes: &[u8]) -> anyhow::Result<Descriptor> {
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(layer::digest(bytes).parse::<Digest>()?)
        .size(bytes.len() as u64)
        .build()?)
}

fn write_blob(dir: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let digest = layer::digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes)?;
    Ok(())
}

fn rfc3339(epoch: i64) -> anyhow::Result<String> {
    let t = chrono::DateTime::from_timestamp(epoch, 0)
        .with_context(|| format!("SOURCE_DATE_EPOCH {epoch} is out of range"))?;
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn git_revision(root: &Path) -> String {
    Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The binary without its symbol table (binutils' `strip`, when installed), else as built.
fn stripped(binary: &Path, dir: &Path) -> anyhow::Result<Vec<u8>> {
    let out = dir.with_extension("stripped");
    // strip writes beside its output; without the directory it fails with "Bad file descriptor".
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let done = match Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status()
    {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!(
                "strip {} failed ({s}); using it unstripped",
                binary.display()
            );
            false
        }
        Err(_) => false,
    };
    let bytes = std::fs::read(if done { &out } else { binary })?;
    let _ = std::fs::remove_file(&out);
    Ok(bytes)
}

/// Writes `c`'s image with `binary` into `dir` (emptied first).
pub fn write(
    root: &Path,
    c: &Controller,
    binary: &Path,
    dir: &Path,
    epoch: i64,
) -> anyhow::Result<Image> {
    let bin = stripped(binary, dir).with_context(|| {
        format!(
            "reading {} (build it first, without --no-build)",
            binary.display()
        )
    })?;
    let ca = std::fs::read(CA_BUNDLE)
        .with_context(|| format!("reading {CA_BUNDLE}: install Debian's ca-certificates"))?;
    let layer = layer::build(
        layer::root_fs(c.binary, bin, ca, c.uid),
        u64::try_from(epoch).unwrap_or(0),
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;

    let created = rfc3339(epoch)?;
    let labels: HashMap<String, String> = [
        ("org.opencontainers.image.title", c.binary.to_string()),
        (
            "org.opencontainers.image.description",
            c.description.to_string(),
        ),
        ("org.opencontainers.image.version", TAG.to_string()),
        (
            "org.opencontainers.image.licenses",
            "Apache-2.0".to_string(),
        ),
        (
            "org.opencontainers.image.source",
            "https://example.invalid/strongroom".to_string(),
        ),
        ("org.opencontainers.image.revision", git_revision(root)),
        ("org.opencontainers.image.created", created.clone()),
        ("org.opencontainers.image.ref.name", TAG.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let entrypoint = format!("/usr/local/bin/{}", c.binary);
    let config = ImageConfigurationBuilder::default()
        .created(created.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(
            ConfigBuilder::default()
                .user(format!("{0}:{0}", c.uid))
                .entrypoint(vec![entrypoint.clone()])
                .env(vec![
                    "PATH=/usr/local/bin".to_string(),
                    format!("SSL_CERT_FILE={CA_BUNDLE}"),
                ])
                .exposed_ports(
                    c.ports
                        .iter()
                        .map(|p| format!("{p}/tcp"))
                        .collect::<Vec<_>>(),
                )
                .working_dir("/".to_string())
                .labels(labels.clone())
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers".to_string())
                .diff_ids(vec![layer.diff_id.clone()])
                .build()?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created)
                .created_by(format!("cargo xtask image {}", c.id))
                .comment(format!("{entrypoint}, CA certificates, user {}", c.uid))
                .build()?,
        ])
        .build()?;
    let config_bytes = canonical_json(&config)?;
    write_blob(dir, &config_bytes)?;
    write_blob(dir, &layer.gzip)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config_bytes)?)
        .layers(vec![descriptor(MediaType::ImageLayerGzip, &layer.gzip)?])
        .annotations(labels)
        .build()?;
    let manifest_bytes = canonical_json(&manifest)?;
    write_blob(dir, &manifest_bytes)?;
    let mut manifest_desc = descriptor(MediaType::ImageManifest, &manifest_bytes)?;
    manifest_desc.set_annotations(Some(
        [
            (
                "org.opencontainers.image.ref.name".to_string(),
                TAG.to_string(),
            ),
            (
                "io.containerd.image.name".to_string(),
                format!("{}:{TAG}", c.repository),
            ),
        ]
        .into(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_desc])
        .build()?;
    std::fs::write(dir.join("index.json"), canonical_json(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(Image {
        manifest_digest: layer::digest(&manifest_bytes),
        compressed: layer.gzip.len() as u64,
        unpacked: layer.tar_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first image's directory does not exist yet when its binary is stripped; strip must
    /// still run (it used to fail with "Bad file descriptor" and ship the binary unstripped).
    #[test]
    fn strips_into_a_directory_that_does_not_exist_yet() {
        let tmp = std::env::temp_dir().join(format!("strip-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let binary = std::env::current_exe().unwrap();
        let before = std::fs::metadata(&binary).unwrap().len();
        let bytes = stripped(&binary, &tmp.join("images/first")).unwrap();
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(
            (bytes.len() as u64) < before,
            "not stripped: {} bytes of {before}",
            bytes.len()
        );
    }
}
