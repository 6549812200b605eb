//! PEM handling of the Certificate Manager service: a `tls.crt` bundle split into the leaf
//! certificate and its chain, the content fingerprint that tells whether ACM already holds a
//! certificate, the passphrase of `ExportCertificate` and the decryption of the private key it
//! returns (encrypted PKCS #8). Messages name the problem, never key material.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pkcs8::der::pem::{LineEnding, encode_string};
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::{EncryptedPrivateKeyInfoRef, SecretDocument};
use sha2::{Digest, Sha256};

/// Characters of the export passphrase: ACM refuses `#`, `$` and `%`.
const PASSPHRASE_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Its length.
const PASSPHRASE_LEN: usize = 32;

/// One PEM block: its label and DER content.
struct Block {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

/// The PEM blocks of `text`, in order; text around and between blocks is skipped, and header
/// lines (`Name: value`) inside a block are ignored, as Go's PEM decoder does.
fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("-----BEGIN ") {
        let after = &rest[at + "-----BEGIN ".len()..];
        let Some(close) = after.find("-----") else {
            break;
        };
        let label = after[..close].to_string();
        let body_start = &after[close + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            return Err(format!("a PEM block {label:?} has no END line"));
        };
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("a PEM block {label:?} is not valid base64"))?;
        found.push(Block {
            label,
            der: Zeroizing::new(der),
        });
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(found)
}

fn pem(label: &str, der: &[u8]) -> Result<String, String> {
    encode_string(label, LineEnding::LF, der).map_err(|e| format!("PEM encoding: {e}"))
}

/// The leaf (first) certificate of a PEM bundle and the rest as its chain (empty without one),
/// each re-encoded as PEM. Blocks other than `CERTIFICATE` are skipped; the leaf must parse as
/// X.509.
pub(crate) fn split_bundle(bundle: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(bundle).map_err(|_| "it is not PEM text".to_string())?;
    let certs: Vec<Block> = blocks(text)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .collect();
    let Some((leaf, chain)) = certs.split_first() else {
        return Err("no CERTIFICATE PEM block found".into());
    };
    x509_parser::parse_x509_certificate(&leaf.der)
        .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
    let chain = chain
        .iter()
        .map(|b| pem("CERTIFICATE", &b.der))
        .collect::<Result<String, _>>()?;
    Ok((pem("CERTIFICATE", &leaf.der)?, chain))
}

/// A SHA-256 of a certificate and its chain, trailing line ends ignored: equal when ACM holds
/// the same certificate as a Secret.
pub(crate) fn fingerprint(certificate: &str, chain: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(certificate.trim_end_matches(['\r', '\n']).as_bytes());
    h.update(chain.trim_end_matches(['\r', '\n']).as_bytes());
    h.finalize().into()
}

/// A random passphrase for `ExportCertificate`.
pub(crate) fn passphrase() -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(Vec::with_capacity(PASSPHRASE_LEN));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < PASSPHRASE_LEN {
        getrandom::fill(buf.as_mut_slice()).map_err(|e| format!("no randomness: {e}"))?;
        // 248 = 4 × 62: bytes above it are dropped so that each character is equally likely.
        let missing = PASSPHRASE_LEN - out.len();
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| PASSPHRASE_CHARS[usize::from(*b) % PASSPHRASE_CHARS.len()])
                .take(missing),
        );
    }
    Ok(out)
}

/// The private key `ExportCertificate` returned, decrypted with `passphrase` and encoded as an
/// unencrypted PKCS #8 `PRIVATE KEY` block (an unencrypted one is returned as it is).
pub(crate) fn decrypt_key(key_pem: &str, passphrase: &[u8]) -> Result<Zeroizing<String>, String> {
    let block = blocks(key_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| "the exported private key is not PEM".to_string())?;
    match block.label.as_str() {
        "PRIVATE KEY" => Ok(Zeroizing::new(key_pem.to_string())),
        "ENCRYPTED PRIVATE KEY" => {
            let info = EncryptedPrivateKeyInfoRef::try_from(block.der.as_slice())
                .map_err(|e| format!("the exported private key does not parse: {e}"))?;
            let plain: SecretDocument = info
                .decrypt(passphrase)
                .map_err(|e| format!("the exported private key does not decrypt: {e}"))?;
            plain
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| format!("PEM encoding: {e}"))
        }
        other => Err(format!(
            "the exported private key is a {other:?} PEM block, not a PKCS #8 key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec![cn.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn splits_leaf_and_chain() {
        let (leaf, ca) = (cert("leaf.example"), cert("ca.example"));
        let bundle = format!("junk\n{leaf}\n{ca}");
        let (l, chain) = split_bundle(bundle.as_bytes()).unwrap();
        assert_eq!(l.trim(), leaf.trim());
        assert_eq!(chain.trim(), ca.trim());
        let (_, none) = split_bundle(leaf.as_bytes()).unwrap();
        assert!(none.is_empty());
        for bad in [
            "no pem here",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        ] {
            assert!(split_bundle(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprint_ignores_trailing_newlines_only() {
        assert_eq!(fingerprint("a\n", "b\r\n"), fingerprint("a", "b"));
        assert_ne!(fingerprint("a", "b"), fingerprint("a", "c"));
    }

    #[test]
    fn passphrase_is_random_and_safe() {
        let (a, b) = (passphrase().unwrap(), passphrase().unwrap());
        assert_eq!(a.len(), PASSPHRASE_LEN);
        assert_ne!(*a, *b);
        assert!(a.iter().all(|c| c.is_ascii_alphanumeric()));
    }
}
