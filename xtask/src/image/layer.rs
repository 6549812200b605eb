//! The image's one layer as a reproducible tar.gz: entries sorted by path, owned by root
//! (numeric ids, no names), every mtime `SOURCE_DATE_EPOCH`, gzip without a name or time.

use std::io::Write;

use anyhow::Context;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// One entry of the layer.
pub enum Entry {
    /// A directory with its mode.
    Dir(u32),
    /// A regular file with its mode and content.
    File(u32, Vec<u8>),
}

/// The layer's bytes and digests.
pub struct Layer {
    /// The gzip-compressed tar (the blob).
    pub gzip: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the config's `diff_id`).
    pub diff_id: String,
    /// The uncompressed tar's size.
    pub tar_size: u64,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The files of a controller's root file system: `/usr/local/bin/<binary>`, the CA bundle,
/// `/etc/passwd` and `/etc/group` naming the numeric user, and a world-writable `/tmp`.
pub fn root_fs(
    binary_name: &str,
    binary: Vec<u8>,
    ca_bundle: Vec<u8>,
    uid: u32,
) -> Vec<(String, Entry)> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{uid}:{uid}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{uid}:\n");
    let mut entries = vec![
        ("etc/".to_string(), Entry::Dir(0o755)),
        ("etc/group".into(), Entry::File(0o644, group.into_bytes())),
        ("etc/passwd".into(), Entry::File(0o644, passwd.into_bytes())),
        ("etc/ssl/".into(), Entry::Dir(0o755)),
        ("etc/ssl/certs/".into(), Entry::Dir(0o755)),
        (
            "etc/ssl/certs/ca-certificates.crt".into(),
            Entry::File(0o644, ca_bundle),
        ),
        ("tmp/".into(), Entry::Dir(0o1777)),
        ("usr/".into(), Entry::Dir(0o755)),
        ("usr/local/".into(), Entry::Dir(0o755)),
        ("usr/local/bin/".into(), Entry::Dir(0o755)),
        (
            format!("usr/local/bin/{binary_name}"),
            Entry::File(0o755, binary),
        ),
    ];
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// Writes `entries` (sorted here) as a tar and gzips it.
pub fn build(mut entries: Vec<(String, Entry)>, mtime: u64) -> anyhow::Result<Layer> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        let data: &[u8] = match entry {
            Entry::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                &[]
            }
            Entry::File(mode, bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(bytes.len() as u64);
                bytes
            }
        };
        tar.append_data(&mut header, path, data)
            .with_context(|| format!("adding {path}"))?;
    }
    let tar = tar.into_inner()?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tar)?;
    Ok(Layer {
        gzip: gz.finish()?,
        diff_id: digest(&tar),
        tar_size: tar.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Entry)> {
        root_fs("bin", b"\x7fELF...".to_vec(), b"certs".to_vec(), 1001)
    }

    #[test]
    fn the_same_files_give_the_same_bytes_and_the_mtime_is_the_epoch() {
        let a = build(files(), 1_700_000_000).unwrap();
        let b = build(files().into_iter().rev().collect(), 1_700_000_000).unwrap();
        assert_eq!(a.gzip, b.gzip);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(build(files(), 0).unwrap().diff_id, a.diff_id);
    }

    #[test]
    fn entries_are_root_owned_sorted_and_tmp_is_sticky() {
        let layer = build(files(), 42).unwrap();
        let tar = flate2::read::GzDecoder::new(&layer.gzip[..]);
        let mut archive = tar::Archive::new(tar);
        let mut paths = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 42)
            );
            let path = entry.path().unwrap().display().to_string();
            if path == "tmp/" {
                assert_eq!(h.mode().unwrap(), 0o1777);
            }
            if path == "etc/passwd" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut { entry }, &mut text).unwrap();
                assert!(text.contains(":1001:1001:"), "{text}");
            }
            paths.push(path);
        }
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(paths.contains(&"usr/local/bin/bin".to_string()));
        assert!(
            !paths
                .iter()
                .any(|p| p.starts_with("bin/") || p.contains("sh"))
        );
    }
}
