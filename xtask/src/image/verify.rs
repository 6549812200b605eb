//! Checks of a written image layout: what the OCI spec and the runtime rely on, read back
//! from the files (not from what [`super::layout`] meant to write).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::layer::digest;
use super::{Controller, TAG};

/// A blob's bytes, after checking that its digest and size are the descriptor's.
fn blob(dir: &Path, d: &Descriptor) -> anyhow::Result<Vec<u8>> {
    let want = d.digest().to_string();
    let hex = want
        .strip_prefix("sha256:")
        .with_context(|| format!("{want}: only sha256 digests are written"))?;
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex))
        .with_context(|| format!("blob {want} is missing"))?;
    ensure!(
        digest(&bytes) == want,
        "blob {want} has digest {}",
        digest(&bytes)
    );
    ensure!(
        bytes.len() as u64 == d.size(),
        "blob {want} has {} bytes, its descriptor says {}",
        bytes.len(),
        d.size()
    );
    Ok(bytes)
}

/// A layer's files: path → (mode, content).
type Files = BTreeMap<String, (u32, Vec<u8>)>;

fn unpack(gzip: &[u8]) -> anyhow::Result<(String, Files)> {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gzip).read_to_end(&mut tar_bytes)?;
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        let mode = entry.header().mode()?;
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        files.insert(path, (mode, content));
    }
    Ok((digest(&tar_bytes), files))
}

/// Whether `elf` is a static executable: no program interpreter and no needed libraries.
pub fn is_static(elf: &[u8]) -> anyhow::Result<bool> {
    use object::Endianness;
    use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
    let file = ElfFile64::<Endianness>::parse(elf).context("not a 64-bit ELF executable")?;
    let endian = file.endian();
    for segment in file.elf_program_headers() {
        if segment.p_type(endian) == object::elf::PT_INTERP {
            return Ok(false);
        }
        let needs_libraries = segment
            .dynamic(endian, elf)?
            .is_some_and(|d| d.iter().any(|d| d.d_tag(endian) == object::elf::DT_NEEDED));
        if needs_libraries {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Verifies the layout in `dir` for controller `c`.
pub fn layout(dir: &Path, c: &Controller) -> anyhow::Result<()> {
    let layout_file = std::fs::read_to_string(dir.join("oci-layout"))?;
    ensure!(
        layout_file.contains("\"imageLayoutVersion\":\"1.0.0\""),
        "oci-layout: {layout_file}"
    );
    let index = ImageIndex::from_file(dir.join("index.json"))?;
    let [manifest_desc] = index.manifests().as_slice() else {
        bail!(
            "index.json lists {} manifests, not one",
            index.manifests().len()
        );
    };
    let ref_name = manifest_desc
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"));
    ensure!(
        ref_name.map(String::as_str) == Some(TAG),
        "the manifest is not tagged {TAG}"
    );
    let manifest = ImageManifest::from_reader(&blob(dir, manifest_desc)?[..])?;
    let config = ImageConfiguration::from_reader(&blob(dir, manifest.config())?[..])?;
    let diff_ids = config.rootfs().diff_ids();
    ensure!(
        diff_ids.len() == manifest.layers().len(),
        "{} diff_ids for {} layers",
        diff_ids.len(),
        manifest.layers().len()
    );
    let mut files = BTreeMap::new();
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let (tar_digest, layer_files) = unpack(&blob(dir, layer)?)?;
        ensure!(
            &tar_digest == diff_id,
            "layer's tar is {tar_digest}, diff_id says {diff_id}"
        );
        files.extend(layer_files);
    }
    let run = config
        .config()
        .as_ref()
        .context("the config has no run settings")?;
    let user = run.user().as_deref().unwrap_or("");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .with_context(|| format!("user {user:?} is not numeric"))?;
    ensure!(
        uid != 0 && uid == c.uid,
        "runs as user {uid}, not {}",
        c.uid
    );
    let passwd = files
        .get("etc/passwd")
        .map(|f| String::from_utf8_lossy(&f.1).into_owned());
    ensure!(
        passwd.is_some_and(|p| p.contains(&format!(":{uid}:{uid}:"))),
        "/etc/passwd has no entry for {uid}"
    );
    let entrypoint = run
        .entrypoint()
        .as_ref()
        .and_then(|e| e.first())
        .context("no entrypoint")?;
    let (mode, exe) = files
        .get(entrypoint.trim_start_matches('/'))
        .with_context(|| format!("the entrypoint {entrypoint} is not in the image"))?;
    ensure!(
        mode & 0o111 != 0,
        "{entrypoint} is not executable (mode {mode:o})"
    );
    ensure!(is_static(exe)?, "{entrypoint} is not statically linked");
    ensure!(
        !files.keys().any(|p| p == "bin/sh" || p.ends_with("/sh")),
        "the image has a shell"
    );
    ensure!(
        files.get("tmp/").is_some_and(|(m, _)| m & 0o1777 == 0o1777),
        "/tmp is missing or not world-writable"
    );
    ensure!(
        files.contains_key("etc/ssl/certs/ca-certificates.crt"),
        "no CA certificates"
    );
    Ok(())
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--help").output().is_ok()
}

/// Runs `cmd`; its stdout, or an error with its output.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Debian's `oci-image-tool validate` and `skopeo inspect`/`copy` when installed: returns the
/// `docker-archive` tarball written next to the layout (`target/oci/<id>.tar`).
pub fn with_tools(dir: &Path, c: &Controller) -> anyhow::Result<Option<PathBuf>> {
    if have("oci-image-tool") {
        run(Command::new("oci-image-tool")
            .args([
                "validate",
                "--type",
                "image",
                "--ref",
                &format!("name={TAG}"),
            ])
            .arg(dir))?;
    } else {
        println!("  oci-image-tool not installed (apt-get install oci-image-tool): skipped");
    }
    if !have("skopeo") {
        println!("  skopeo not installed (apt-get install skopeo): skipped");
        return Ok(None);
    }
    let reference = format!("oci:{}:{TAG}", dir.display());
    let inspect: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "--insecure-policy",
        "inspect",
        &reference,
    ]))?)?;
    ensure!(
        inspect["Os"] == "linux" && inspect["Architecture"] == "amd64",
        "skopeo inspect: {inspect}"
    );
    let archive = dir.with_extension("tar");
    let _ = std::fs::remove_file(&archive);
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &reference,
        &format!(
            "docker-archive:{}:{}:{TAG}",
            archive.display(),
            c.repository
        ),
    ]))?;
    // what `docker load` reads: manifest.json naming the tag, the config and the layer
    let mut found = None;
    let mut tar = tar::Archive::new(std::fs::File::open(&archive)?);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == "manifest.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            found = Some(serde_json::from_str::<serde_json::Value>(&text)?);
        }
    }
    let manifest = found.context("the docker-archive has no manifest.json")?;
    let want = format!("{}:{TAG}", c.repository);
    ensure!(
        manifest[0]["RepoTags"][0] == want.as_str()
            && manifest[0]["Layers"]
                .as_array()
                .is_some_and(|l| l.len() == 1),
        "docker-archive manifest.json: {manifest}"
    );
    Ok(Some(archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_dynamic() {
        // the test harness is a glibc program: it has an interpreter
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static(&exe).unwrap());
        assert!(is_static(b"not an elf").is_err());
    }
}
