//! The hybrid RSA-OAEP + AES-256-GCM format, byte-compatible with upstream:
//! `u16 BE length ‖ RSA-OAEP(session key) ‖ AES-256-GCM(plaintext, zero nonce) ‖ tag`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand_core::TryCryptoRng;
use rsa::Oaep;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::{SealError, UnsealError};
use super::keys::{PrivateSealingKey, PublicSealingKey};
use crate::secret::SecretBytes;

/// Bytes in the AES-256 session key.
pub const SESSION_KEY_LEN: usize = 32;
/// Bytes in the AES-GCM tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;
const NONCE: [u8; 12] = [0u8; 12];

/// Seals `plaintext` for `key` under the OAEP `label`, drawing the session key and then the
/// OAEP seed from `rng` (the same order as upstream, so known-answer tests carry over).
pub fn seal_bytes<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PublicSealingKey,
    label: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut session = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    rng.try_fill_bytes(session.as_mut())
        .map_err(|_| SealError::Random)?;
    let wrapped = key
        .rsa()
        .encrypt(rng, Oaep::<Sha256>::new_with_label(label), session.as_ref())
        .map_err(|e| SealError::Rsa(e.to_string()))?;
    let prefix =
        u16::try_from(wrapped.len()).map_err(|_| SealError::Rsa("key too large".into()))?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*session));
    let sealed = cipher
        .encrypt(&Nonce::from(NONCE), plaintext)
        .map_err(|_| SealError::Aead)?;
    let mut out = Vec::with_capacity(2 + wrapped.len() + sealed.len());
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Seals and encodes as standard padded base64, the form stored in `encryptedData`.
pub fn seal_to_base64<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PublicSealingKey,
    label: &[u8],
    plaintext: &[u8],
) -> Result<String, SealError> {
    seal_bytes(rng, key, label, plaintext)
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
}

/// Decodes base64 as Go's `StdEncoding` does: padding required, `\r` and `\n` skipped.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, UnsealError> {
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| UnsealError::InvalidBase64(e.to_string()))
}

/// The two parts of a sealed blob, after the length prefix has been checked.
#[derive(Debug, Clone, Copy)]
pub struct SealedParts<'a> {
    /// RSA-OAEP ciphertext of the session key.
    pub wrapped_key: &'a [u8],
    /// AES-GCM ciphertext followed by its tag.
    pub sealed_data: &'a [u8],
}

/// Splits a blob into its parts, failing with [`UnsealError::Truncated`] when it is short.
pub fn split(blob: &[u8]) -> Result<SealedParts<'_>, UnsealError> {
    let [hi, lo, rest @ ..] = blob else {
        return Err(UnsealError::Truncated {
            len: blob.len(),
            needed: 2,
        });
    };
    let rsa_len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let needed = 2 + rsa_len + TAG_LEN;
    if blob.len() < needed {
        return Err(UnsealError::Truncated {
            len: blob.len(),
            needed,
        });
    }
    let (wrapped_key, sealed_data) = rest.split_at(rsa_len);
    Ok(SealedParts {
        wrapped_key,
        sealed_data,
    })
}

/// Outcome of trying one key on one blob.
#[derive(Debug)]
pub(crate) enum TryOpen {
    /// Opened.
    Opened(SecretBytes),
    /// OAEP failed: not this key, or not this label.
    WrongKeyOrLabel,
    /// OAEP passed but GCM failed: the data was altered.
    Tampered,
}

/// Tries to open `parts` with one key and one label.
pub(crate) fn try_open(key: &PrivateSealingKey, label: &[u8], parts: SealedParts<'_>) -> TryOpen {
    if parts.wrapped_key.len() != key.public().size_bytes() {
        return TryOpen::WrongKeyOrLabel;
    }
    let Some(session) = key.oaep_decrypt(parts.wrapped_key, label) else {
        return TryOpen::WrongKeyOrLabel;
    };
    if session.len() != SESSION_KEY_LEN {
        return TryOpen::Tampered;
    }
    let Ok(cipher) = Aes256Gcm::new_from_slice(&session) else {
        return TryOpen::Tampered;
    };
    match cipher.decrypt(&Nonce::from(NONCE), parts.sealed_data) {
        Ok(plain) => TryOpen::Opened(SecretBytes::new(plain)),
        Err(_) => TryOpen::Tampered,
    }
}
