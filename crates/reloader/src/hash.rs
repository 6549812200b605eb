//! The hash of a ConfigMap's or Secret's data, and the environment variable that carries it.
//!
//! Upstream's hash (the default) must be byte-identical, so workloads that upstream already
//! rolled keep their `STAKATER_*` value and do not roll again on the switch: SHA-1 (lowercase
//! hex) of the entries `key=value` sorted byte-wise and joined with `;` — a ConfigMap's `data`
//! as is and its `binaryData` base64-encoded, a Secret's `data` as raw bytes. Nothing is
//! escaped, so `{a: "1;b=2"}` and `{a: "1", b: "2"}` hash alike. The v2 hash (opt-in) is
//! unambiguous: SHA-256 over length-prefixed entries that also tell `data` from `binaryData`.

use std::collections::BTreeMap;

use base64::Engine;
use sha1::Digest as _;
use sha2::Digest as _;

/// The hash upstream writes for a deleted ConfigMap or Secret (annotations strategy).
pub const DELETE_MARKER: &str = "__RELOADER_EMPTY_DELETE_MARKER__";

/// Which hash a workload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashVersion {
    /// Upstream's SHA-1 of `k=v;...` (the default: no rollout on migration).
    Upstream,
    /// SHA-256 of length-prefixed entries, prefixed `v2:`.
    V2,
}

/// The data of a ConfigMap or Secret, as bytes per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data {
    /// `data` (a ConfigMap's text values, a Secret's decoded bytes).
    pub data: BTreeMap<String, Vec<u8>>,
    /// A ConfigMap's `binaryData`.
    pub binary: BTreeMap<String, Vec<u8>>,
}

impl Data {
    /// The hash of this data in `version`.
    pub fn hash(&self, version: HashVersion) -> String {
        match version {
            HashVersion::Upstream => self.upstream_hash(),
            HashVersion::V2 => self.v2_hash(),
        }
    }

    fn upstream_hash(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut entries: Vec<Vec<u8>> = self
            .data
            .iter()
            .map(|(k, v)| [k.as_bytes(), b"=", v].concat())
            .chain(
                self.binary
                    .iter()
                    .map(|(k, v)| [k.as_bytes(), b"=", b64.encode(v).as_bytes()].concat()),
            )
            .collect();
        entries.sort();
        sha1_hex(&entries.join(&b';'))
    }

    fn v2_hash(&self) -> String {
        let mut h = sha2::Sha256::new();
        for (tag, map) in [(b'd', &self.data), (b'b', &self.binary)] {
            for (k, v) in map {
                h.update([tag]);
                h.update((k.len() as u64).to_be_bytes());
                h.update(k.as_bytes());
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
        }
        format!("v2:{}", hex(&h.finalize()))
    }

    /// A short hash per key (data and binaryData apart), for per-key triggers.
    pub fn key_hashes(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (tag, map) in [(b'd', &self.data), (b'b', &self.binary)] {
            for (k, v) in map {
                let digest = sha2::Sha256::new()
                    .chain_update([tag])
                    .chain_update(v)
                    .finalize();
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                out.insert(k.clone(), u64::from_be_bytes(first));
            }
        }
        out
    }
}

/// SHA-1 of `bytes`, lowercase hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex(&sha1::Sha1::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kind of source a workload reloads on, as upstream spells it in env var names and in
/// the `last-reloaded-from` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A Secrets Store CSI driver SecretProviderClass (`--enable-csi-integration`): its
    /// "data" are the object versions its SecretProviderClassPodStatuses report.
    SecretProviderClass,
}

impl SourceKind {
    /// Every kind.
    pub const ALL: [SourceKind; 3] = [Self::ConfigMap, Self::Secret, Self::SecretProviderClass];

    /// `CONFIGMAP`, `SECRET` or `SECRETPROVIDERCLASS`.
    pub fn upper(self) -> &'static str {
        match self {
            Self::ConfigMap => "CONFIGMAP",
            Self::Secret => "SECRET",
            Self::SecretProviderClass => "SECRETPROVIDERCLASS",
        }
    }

    /// `configmaps`, `secrets` or `secretproviderclasspodstatuses` (metric labels, flags).
    pub fn resource(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmaps",
            Self::Secret => "secrets",
            Self::SecretProviderClass => "secretproviderclasspodstatuses",
        }
    }

    /// Position in per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Self::ConfigMap => 0,
            Self::Secret => 1,
            Self::SecretProviderClass => 2,
        }
    }
}

/// The environment variable upstream sets: `STAKATER_<NAME>_<TYPE>`, where `<NAME>` is the
/// upper-cased name with each run of other characters than `A-Z0-9` turned into one `_`
/// (leading ones dropped, a trailing one kept, as upstream's loop does).
pub fn env_var_name(name: &str, kind: SourceKind) -> String {
    let mut out = String::from("STAKATER_");
    let mut last_valid = false;
    for c in name.to_ascii_uppercase().bytes() {
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            out.push(char::from(c));
            last_valid = true;
        } else {
            if last_valid {
                out.push('_');
            }
            last_valid = false;
        }
    }
    out.push('_');
    out.push_str(kind.upper());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> Data {
        Data {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            binary: BTreeMap::new(),
        }
    }

    /// Expected values computed from the format in upstream/reloader.md §2.1 with Python's
    /// hashlib (`hashlib.sha1(b";".join(sorted(entries))).hexdigest()`), not with this code.
    #[test]
    fn upstream_hash_table() {
        let mut config_map = data(&[("conf", b"x=1")]);
        config_map
            .binary
            .insert("logo".into(), vec![137, 80, 78, 71]);
        let cases: Vec<(&str, Data, &str)> = vec![
            (
                "empty",
                Data::default(),
                "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            ),
            (
                "one",
                data(&[("a", b"1")]),
                "86eda770a6060824b090dd4df091e3bd4121279c",
            ),
            (
                "two, sorted",
                data(&[("b", b"2"), ("a", b"1")]),
                "f83e99e324ba68ccc373a58ef1eb42f8ab88646a",
            ),
            (
                "empty value",
                data(&[("empty", b"")]),
                "2a20df68a3513aab60b76b7252612e722b11bb65",
            ),
            (
                "binary secret bytes",
                data(&[("bin", &[0u8, 255, 10, 59, 61])]),
                "9c4c3a65405c495a256bcaf729af93cc91c7a250",
            ),
            (
                "binaryData base64",
                config_map,
                "47b5e9c60826caeaeb1382b53a9484276f7c859b",
            ),
            (
                "byte-wise order",
                data(&[("a", b"2"), ("B", b"1"), ("a.b", b"3")]),
                "7e589aba91d4b9868b2630d867e4a37dc2f77fa2",
            ),
            (
                "unicode",
                data(&[("ключ", "значение".as_bytes())]),
                "886260d1516151d718aac1f685a411ff8af480dd",
            ),
        ];
        for (what, d, want) in cases {
            assert_eq!(d.hash(HashVersion::Upstream), want, "{what}");
        }
    }

    #[test]
    fn empty_data_hashes_to_sha1_of_nothing() {
        assert_eq!(
            Data::default().hash(HashVersion::Upstream),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn upstream_hash_is_ambiguous_and_v2_is_not() {
        let one = data(&[("a", b"1;b=2")]);
        let two = data(&[("a", b"1"), ("b", b"2")]);
        assert_eq!(
            one.hash(HashVersion::Upstream),
            two.hash(HashVersion::Upstream)
        );
        assert_ne!(one.hash(HashVersion::V2), two.hash(HashVersion::V2));
        let mut as_binary = Data::default();
        as_binary.binary.insert("a".into(), b"1".to_vec());
        assert_ne!(
            as_binary.hash(HashVersion::V2),
            data(&[("a", b"1")]).hash(HashVersion::V2)
        );
        assert!(one.hash(HashVersion::V2).starts_with("v2:"));
    }

    #[test]
    fn env_var_names_as_upstream() {
        let cases = [
            (
                "my-app.cfg",
                SourceKind::ConfigMap,
                "STAKATER_MY_APP_CFG_CONFIGMAP",
            ),
            ("db", SourceKind::Secret, "STAKATER_DB_SECRET"),
            ("a--b..c", SourceKind::Secret, "STAKATER_A_B_C_SECRET"),
            ("-lead", SourceKind::Secret, "STAKATER_LEAD_SECRET"),
            ("trail-", SourceKind::ConfigMap, "STAKATER_TRAIL__CONFIGMAP"),
            ("a.b", SourceKind::Secret, "STAKATER_A_B_SECRET"),
            ("a_b", SourceKind::Secret, "STAKATER_A_B_SECRET"),
            ("v1.2.3", SourceKind::ConfigMap, "STAKATER_V1_2_3_CONFIGMAP"),
        ];
        for (name, kind, want) in cases {
            assert_eq!(env_var_name(name, kind), want, "{name}");
        }
    }

    #[test]
    fn per_key_hashes_change_only_for_the_changed_key() {
        let before = data(&[("a", b"1"), ("b", b"2")]).key_hashes();
        let after = data(&[("a", b"1"), ("b", b"3")]).key_hashes();
        assert_eq!(before["a"], after["a"]);
        assert_ne!(before["b"], after["b"]);
    }
}
