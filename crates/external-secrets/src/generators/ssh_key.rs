//! The SSHKey generator: a fresh RSA or Ed25519 key pair at every run, as upstream makes it.
//!
//! Outputs (as upstream): `privateKey`, the unencrypted OpenSSH private key (`openssh-key-v1`,
//! comment inside) in a PEM block of 64-column lines ending with a newline, and `publicKey`,
//! the `authorized_keys` line (`<algorithm> <base64>[ <comment>]` and a newline).
//!
//! Spec fields: `keyType` (`rsa`, the default, or `ed25519`), `keySize` (RSA modulus bits,
//! 2048 when absent, ignored for Ed25519) and `comment`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use ssh_key::private::{Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::{PrivateKey, PublicKey};
use strongroom_provider_api::{SecretBytes, SecretMap};

/// RSA modulus size when the spec names none.
const DEFAULT_RSA_BITS: i64 = 2048;
/// The RSA sizes the generator accepts (the rsa crate's limits; upstream's CRD caps at 8192
/// and Go refuses keys under 1024 bits).
const RSA_BITS: std::ops::RangeInclusive<i64> = 1024..=8192;

/// The SSHKey spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    key_type: Option<String>,
    key_size: Option<i64>,
    comment: Option<String>,
}

/// The key type and size a spec asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    /// RSA with this many modulus bits.
    Rsa(usize),
    /// Ed25519.
    Ed25519,
}

/// Reads `spec` (as written in the generator object); errors carry upstream's wording.
fn parse(spec: &BTreeMap<String, serde_json::Value>) -> Result<(KeyType, String), String> {
    let spec: Spec = super::parse_spec(spec)?;
    let key_type = match spec.key_type.as_deref().unwrap_or_default() {
        "" | "rsa" => {
            let bits = spec.key_size.unwrap_or(DEFAULT_RSA_BITS);
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "unable to generate SSH key: RSA key size {bits} is out of range ({} to {})",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
            KeyType::Rsa(usize::try_from(bits).unwrap_or(2048))
        }
        "ed25519" => KeyType::Ed25519,
        other => {
            return Err(format!(
                "unable to generate SSH key: unsupported key type: {other}"
            ));
        }
    };
    Ok((key_type, spec.comment.unwrap_or_default()))
}

/// A new key pair of `key_type`.
fn keypair(key_type: KeyType) -> Result<KeypairData, String> {
    let failed = |e: String| format!("unable to generate SSH key: {e}");
    Ok(match key_type {
        KeyType::Ed25519 => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut()).map_err(|e| failed(format!("no randomness: {e}")))?;
            KeypairData::from(Ed25519Keypair::from_seed(&seed))
        }
        KeyType::Rsa(bits) => {
            let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
                .map_err(|e| failed(e.to_string()))?;
            KeypairData::from(RsaKeypair::try_from(&key).map_err(|e| failed(e.to_string()))?)
        }
    })
}

/// `data` in a PEM block labelled `label`: base64 in 64-column lines, as Go's encoder writes.
fn pem(label: &str, data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The two outputs for a key pair with `comment`.
fn encode(key: KeypairData, comment: &str) -> Result<SecretMap, String> {
    let failed = |e: ssh_key::Error| format!("unable to generate SSH key: {e}");
    let private = PrivateKey::new(key, comment).map_err(failed)?;
    let bytes = private.to_bytes().map_err(failed)?;
    let public = PublicKey::new(private.public_key().key_data().clone(), "")
        .to_openssh()
        .map_err(failed)?;
    let public = if comment.is_empty() {
        format!("{public}\n")
    } else {
        format!("{public} {comment}\n")
    };
    let private = zeroize::Zeroizing::new(pem("OPENSSH PRIVATE KEY", &bytes));
    Ok(BTreeMap::from([
        (
            "privateKey".to_string(),
            SecretBytes::from(private.as_str()),
        ),
        ("publicKey".to_string(), SecretBytes::from(public.as_str())),
    ]))
}

/// Runs the SSHKey generator on `spec`. Key generation (seconds for large RSA keys) runs on
/// a blocking thread.
pub(crate) async fn generate(
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let (key_type, comment) = parse(spec)?;
    tokio::task::spawn_blocking(move || encode(keypair(key_type)?, &comment))
        .await
        .map_err(|e| format!("unable to generate SSH key: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn text(map: &SecretMap, key: &str) -> String {
        String::from_utf8_lossy(map[key].expose()).into_owned()
    }

    /// The private key loads, its comment and public half match the `publicKey` line, and
    /// the PEM block has Go's 64-column layout.
    fn check_pair(map: &SecretMap, algorithm: &str, comment: &str) -> PrivateKey {
        let private = text(map, "privateKey");
        let public = text(map, "publicKey");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(private.ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
        let body: Vec<&str> = private.lines().skip(1).collect();
        let body = &body[..body.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body.last().is_some_and(|l| !l.is_empty() && l.len() <= 64));
        let loaded = PrivateKey::from_openssh(&private);
        assert!(loaded.is_ok(), "{loaded:?}");
        let Ok(loaded) = loaded else { unreachable!() };
        assert!(!loaded.is_encrypted());
        assert_eq!(loaded.comment().as_bytes(), comment.as_bytes());
        assert_eq!(loaded.algorithm().as_str(), algorithm);
        assert!(public.ends_with('\n') && !public.ends_with("\n\n"));
        let line = public.trim_end_matches('\n');
        let parsed = PublicKey::from_openssh(line);
        assert!(parsed.is_ok(), "{parsed:?}");
        let Ok(parsed) = parsed else { unreachable!() };
        assert_eq!(parsed.key_data(), loaded.public_key().key_data());
        assert_eq!(parsed.comment().as_bytes(), comment.as_bytes());
        let fields: Vec<&str> = line.splitn(3, ' ').collect();
        assert_eq!(fields[0], algorithm);
        if comment.is_empty() {
            assert_eq!(
                fields.len(),
                2,
                "no trailing space without a comment: {line:?}"
            );
        } else {
            assert_eq!(fields[2], comment);
        }
        loaded
    }

    #[tokio::test]
    async fn ed25519_pairs_load_back_and_match() {
        let a = generate(&spec(json!({"keyType": "ed25519", "comment": "deploy@ci"})))
            .await
            .unwrap_or_default();
        check_pair(&a, "ssh-ed25519", "deploy@ci");
        let b = generate(&spec(json!({"keyType": "ed25519", "keySize": 4096})))
            .await
            .unwrap_or_default();
        check_pair(&b, "ssh-ed25519", "");
        assert_ne!(a["publicKey"], b["publicKey"], "every run makes a new key");
    }

    #[tokio::test]
    async fn rsa_is_the_default_with_2048_bits() {
        let map = generate(&BTreeMap::new()).await.unwrap_or_default();
        let key = check_pair(&map, "ssh-rsa", "");
        let rsa = key.key_data().rsa();
        assert!(rsa.is_some());
        assert_eq!(rsa.map(RsaKeypair::key_size), Some(2048));
        // the empty key type is rsa too, as upstream reads it
        let map = generate(&spec(
            json!({"keyType": "", "keySize": 1024, "comment": "a b"}),
        ))
        .await
        .unwrap_or_default();
        let key = check_pair(&map, "ssh-rsa", "a b");
        assert_eq!(key.key_data().rsa().map(RsaKeypair::key_size), Some(1024));
    }

    #[test]
    fn bad_specs_are_refused_with_upstreams_wording() {
        let err = |v| parse(&spec(v)).err().unwrap_or_default();
        assert_eq!(
            err(json!({"keyType": "dsa"})),
            "unable to generate SSH key: unsupported key type: dsa"
        );
        assert!(err(json!({"keySize": 512})).contains("RSA key size 512 is out of range"));
        assert!(err(json!({"keySize": 16384})).contains("out of range"));
        assert!(err(json!({"keySize": "big"})).starts_with("unable to parse spec: "));
        assert_eq!(
            parse(&spec(json!({"keyType": "ed25519", "keySize": 1}))).ok(),
            Some((KeyType::Ed25519, String::new())),
            "keySize is ignored for ed25519"
        );
    }
}
