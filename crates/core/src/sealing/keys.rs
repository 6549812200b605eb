//! RSA key material: public sealing keys (from certificates) and private unsealing keys.

use std::fmt;

use base64::Engine;
use openssl::md::Md;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::KeyError;

/// The SSH-style SHA256 fingerprint of an RSA public key, e.g. `SHA256:3q2+7w…`.
/// Used to name keys; never part of the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Computes the fingerprint of a public key.
    pub fn of(key: &rsa::PublicKey) -> Self {
        let mut wire = Vec::with_capacity(600);
        put_ssh_string(&mut wire, b"ssh-rsa");
        put_ssh_mpint(&mut wire, &key.e().to_be_bytes());
        put_ssh_mpint(&mut wire, &key.n().to_be_bytes());
        let digest = Sha256::digest(&wire);
        Self(format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        ))
    }

    /// The fingerprint text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn put_ssh_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_ssh_mpint(out: &mut Vec<u8>, be: &[u8]) {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    if digits.first().is_some_and(|b| b & 0x80 != 0) {
        let mut padded = Vec::with_capacity(digits.len() + 1);
        padded.push(0);
        padded.extend_from_slice(digits);
        put_ssh_string(out, &padded);
    } else {
        put_ssh_string(out, digits);
    }
}

/// A public key that seals values (what `kubeseal` gets from the certificate).
#[derive(Clone)]
pub struct PublicSealingKey {
    key: rsa::PublicKey,
    fingerprint: Fingerprint,
}

impl PublicSealingKey {
    /// Wraps an RSA public key.
    pub fn new(key: rsa::PublicKey) -> Self {
        let fingerprint = Fingerprint::of(&key);
        Self { key, fingerprint }
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        rsa::PublicKey::from_public_key_der(der)
            .map(Self::new)
            .map_err(|e| match e {
                rsa::pkcs8::spki::Error::OidUnknown { .. } => KeyError::NotRsa {
                    what: "certificate public key",
                },
                other => KeyError::Parse {
                    what: "public key",
                    reason: other.to_string(),
                },
            })
    }

    /// The RSA key.
    pub fn rsa(&self) -> &rsa::PublicKey {
        &self.key
    }

    /// Modulus size in bytes (the RSA part of each sealed value).
    pub fn size_bytes(&self) -> usize {
        self.key.size()
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

impl fmt::Debug for PublicSealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicSealingKey")
            .field("bits", &(self.key.size() * 8))
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// A private key that unseals values. The RSA private operation runs in OpenSSL
/// (blinded, constant-time; about twice the speed of Go's); the key bytes are never printed.
pub struct PrivateSealingKey {
    pkey: PKey<Private>,
    public: PublicSealingKey,
}

impl PrivateSealingKey {
    /// Parses a PEM private key: PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    /// Other PEM blocks around the key (a certificate, say) are skipped.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let block = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            pem_block(pem, "RSA PRIVATE KEY")?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            pem_block(pem, "PRIVATE KEY")?
        } else if pem.contains("PRIVATE KEY-----") {
            return Err(KeyError::NotRsa {
                what: "PEM private key",
            });
        } else {
            return Err(KeyError::NoPem {
                expected: "RSA PRIVATE KEY or PRIVATE KEY",
            });
        };
        let pkey = PKey::private_key_from_pem(block.as_bytes()).map_err(|e| KeyError::Parse {
            what: "private key",
            reason: openssl_reason(&e),
        })?;
        Self::from_pkey(pkey)
    }

    /// Generates a fresh key of `bits` (2048 to 8192) with e = 65537.
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        let bits32 = u32::try_from(bits).unwrap_or(0);
        if !(2048..=8192).contains(&bits32) {
            return Err(KeyError::UnsupportedSize { bits });
        }
        let rsa = Rsa::generate(bits32).map_err(|e| KeyError::Generate(openssl_reason(&e)))?;
        let pkey = PKey::from_rsa(rsa).map_err(|e| KeyError::Generate(openssl_reason(&e)))?;
        Self::from_pkey(pkey)
    }

    fn from_pkey(pkey: PKey<Private>) -> Result<Self, KeyError> {
        if pkey.id() != Id::RSA {
            return Err(KeyError::NotRsa {
                what: "private key",
            });
        }
        let bits = usize::try_from(pkey.bits()).unwrap_or(0);
        if !(1024..=16384).contains(&bits) {
            return Err(KeyError::UnsupportedSize { bits });
        }
        let spki = pkey.public_key_to_der().map_err(|e| KeyError::Parse {
            what: "private key",
            reason: openssl_reason(&e),
        })?;
        let public = PublicSealingKey::from_spki_der(&spki)?;
        Ok(Self { pkey, public })
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicSealingKey {
        &self.public
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.public.fingerprint()
    }

    /// PKCS#1 PEM (`RSA PRIVATE KEY`), the form upstream stores in `tls.key`.
    pub fn to_pkcs1_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let err = |e: openssl::error::ErrorStack| KeyError::Parse {
            what: "private key",
            reason: openssl_reason(&e),
        };
        let pem = self
            .pkey
            .rsa()
            .and_then(|r| r.private_key_to_pem())
            .map_err(err)?;
        let pem = Zeroizing::new(pem);
        String::from_utf8(pem.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Parse {
                what: "private key",
                reason: "PEM is not UTF-8".into(),
            })
    }

    /// The OpenSSL key, for certificate signing.
    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256) decryption with `label`.
    /// Returns `None` when the padding check fails (wrong key or wrong label).
    pub(crate) fn oaep_decrypt(
        &self,
        ciphertext: &[u8],
        label: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let mut ctx = PkeyCtx::new(&self.pkey).ok()?;
        ctx.decrypt_init().ok()?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
        ctx.set_rsa_oaep_md(Md::sha256()).ok()?;
        ctx.set_rsa_mgf1_md(Md::sha256()).ok()?;
        if !label.is_empty() {
            ctx.set_rsa_oaep_label(label).ok()?;
        }
        let mut out = Zeroizing::new(vec![0u8; self.public.size_bytes()]);
        let len = ctx.decrypt(ciphertext, Some(&mut out)).ok()?;
        out.truncate(len);
        Some(out)
    }
}

impl fmt::Debug for PrivateSealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateSealingKey")
            .field("fingerprint", self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// OpenSSL's first error reason, without file names or key bytes.
fn openssl_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|x| x.reason().map(str::to_string))
        .unwrap_or_else(|| "unreadable key".to_string())
}

/// Extracts the first PEM block labelled `label` (with its armour) from `text`.
fn pem_block(text: &str, label: &'static str) -> Result<String, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or(KeyError::NoPem { expected: label })?;
    let rest = &text[start..];
    let stop = rest.find(&end).ok_or(KeyError::NoPem { expected: label })?;
    Ok(format!("{}\n", &rest[..stop + end.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_adds_sign_byte() {
        let mut out = Vec::new();
        put_ssh_mpint(&mut out, &[0, 0, 0x80, 1]);
        assert_eq!(out, vec![0, 0, 0, 3, 0, 0x80, 1]);
        out.clear();
        put_ssh_mpint(&mut out, &[0, 1, 0, 1]);
        assert_eq!(out, vec![0, 0, 0, 3, 1, 0, 1]);
    }

    #[test]
    fn rejects_non_key_pem() {
        assert!(matches!(
            PrivateSealingKey::from_pem("hello"),
            Err(KeyError::NoPem { .. })
        ));
        assert!(matches!(
            PrivateSealingKey::from_pem(
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
            ),
            Err(KeyError::NotRsa { .. })
        ));
    }
}
