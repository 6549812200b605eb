//! A set of private keys that unseals values, trying the most likely key first.

use super::error::UnsealError;
use super::hybrid::{SealedParts, TryOpen, decode_base64, split, try_open};
use super::keys::{Fingerprint, PrivateSealingKey};
use crate::scope::SealingScope;
use crate::secret::SecretBytes;

/// Where a sealed value is expected to live: what its OAEP label is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealTarget<'a> {
    /// The scope declared by the object's annotations.
    pub scope: SealingScope,
    /// The object's namespace.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
}

impl SealTarget<'_> {
    /// The OAEP label for the declared scope.
    pub fn label(&self) -> Vec<u8> {
        self.scope.label(self.namespace, self.name)
    }
}

/// A value that was opened, and the key that opened it.
#[derive(Debug)]
pub struct Unsealed {
    /// The plaintext.
    pub plaintext: SecretBytes,
    /// Fingerprint of the key that opened it.
    pub key: Fingerprint,
}

/// All private keys a controller holds. Every key unseals; none is ever dropped by rotation.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<PrivateSealingKey>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a key already present (same fingerprint) is not added twice.
    pub fn insert(&mut self, key: PrivateSealingKey) -> bool {
        if self.contains(key.fingerprint()) {
            return false;
        }
        self.keys.push(key);
        true
    }

    /// Removes the key with `fingerprint`, returning whether it was present.
    pub fn remove(&mut self, fingerprint: &Fingerprint) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.fingerprint() != fingerprint);
        before != self.keys.len()
    }

    /// Whether a key with this fingerprint is held.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.keys.iter().any(|k| k.fingerprint() == fingerprint)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> &[PrivateSealingKey] {
        &self.keys
    }

    /// Opens one base64 `encryptedData` value for `target`.
    pub fn unseal_base64(
        &self,
        value: &str,
        target: SealTarget<'_>,
        hint: Option<&Fingerprint>,
    ) -> Result<Unsealed, UnsealError> {
        self.unseal(&decode_base64(value)?, target, hint)
    }

    /// Opens one raw blob for `target`. Keys are tried with `hint` first, then in order.
    /// When no key opens it under the declared scope, the other scopes' labels are tried
    /// so that the error can say "sealed as namespace-wide" instead of "no key".
    pub fn unseal(
        &self,
        blob: &[u8],
        target: SealTarget<'_>,
        hint: Option<&Fingerprint>,
    ) -> Result<Unsealed, UnsealError> {
        let parts = split(blob)?;
        if self.keys.is_empty() {
            return Err(UnsealError::NoKeys);
        }
        match self.open_with_label(parts, &target.label(), hint) {
            Ok(u) => return Ok(u),
            Err(UnsealError::Tampered) => return Err(UnsealError::Tampered),
            Err(_) => {}
        }
        for other in SealingScope::ALL.into_iter().filter(|s| *s != target.scope) {
            let label = other.label(target.namespace, target.name);
            if self.open_with_label(parts, &label, hint).is_ok() {
                return Err(UnsealError::ScopeMismatch {
                    sealed: other,
                    declared: target.scope,
                });
            }
        }
        Err(UnsealError::NoKeyCouldDecrypt {
            keys_tried: self.keys.len(),
            scope: target.scope,
        })
    }

    fn open_with_label(
        &self,
        parts: SealedParts<'_>,
        label: &[u8],
        hint: Option<&Fingerprint>,
    ) -> Result<Unsealed, UnsealError> {
        let hinted = hint.and_then(|h| self.keys.iter().find(|k| k.fingerprint() == h));
        let ordered = hinted
            .into_iter()
            .chain(self.keys.iter().filter(|k| Some(k.fingerprint()) != hint));
        let mut tampered = false;
        for key in ordered {
            match try_open(key, label, parts) {
                TryOpen::Opened(plaintext) => {
                    return Ok(Unsealed {
                        plaintext,
                        key: key.fingerprint().clone(),
                    });
                }
                TryOpen::Tampered => tampered = true,
                TryOpen::WrongKeyOrLabel => {}
            }
        }
        if tampered {
            Err(UnsealError::Tampered)
        } else {
            Err(UnsealError::NoKeys)
        }
    }
}
