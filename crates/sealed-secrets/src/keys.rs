//! Key Secrets in the controller namespace, in upstream's shape: `kubernetes.io/tls`, label
//! `sealedsecrets.bitnami.com/sealed-secrets-key: active`, PKCS#1 `tls.key`, PEM `tls.crt`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strongroom_core::crd::sealed_secret::{SEALING_KEY_ACTIVE, SEALING_KEY_LABEL};
use strongroom_core::sealing::{KeyError, PrivateSealingKey, SealingCertificate};

/// Why a key Secret could not be used (the key itself is never printed).
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// A data key is missing.
    #[error("key Secret {secret}: no data.{field:?}")]
    Missing {
        /// Secret name.
        secret: String,
        /// The missing key.
        field: &'static str,
    },
    /// The PEM does not hold a usable key or certificate.
    #[error("key Secret {secret}: {source}")]
    Invalid {
        /// Secret name.
        secret: String,
        /// What is wrong.
        source: KeyError,
    },
    /// The certificate is not the key's.
    #[error("key Secret {secret}: tls.crt does not belong to tls.key")]
    Mismatch {
        /// Secret name.
        secret: String,
    },
}

/// A key loaded from a Secret.
#[derive(Debug)]
pub struct LoadedKey {
    /// The private key.
    pub key: PrivateSealingKey,
    /// Its certificate (the first in `tls.crt`).
    pub cert: SealingCertificate,
    /// The Secret it came from.
    pub secret_name: String,
    /// The Secret's creation time.
    pub created: Option<DateTime<Utc>>,
}

/// Which key is "newest" (`--key-order-priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrder {
    /// By certificate notBefore (upstream default).
    #[default]
    CertNotBefore,
    /// By Secret creationTimestamp.
    SecretCreationTimestamp,
}

impl std::str::FromStr for KeyOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "CertNotBefore" => Ok(Self::CertNotBefore),
            "SecretCreationTimestamp" => Ok(Self::SecretCreationTimestamp),
            other => Err(format!(
                "unknown key order {other:?}: expected CertNotBefore or SecretCreationTimestamp"
            )),
        }
    }
}

/// Whether a Secret is a key Secret: labelled active, or the legacy Secret named `prefix`.
pub fn is_key_secret(secret: &Secret, prefix: &str) -> bool {
    let active = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SEALING_KEY_LABEL))
        .is_some_and(|v| v == SEALING_KEY_ACTIVE);
    active || secret.metadata.name.as_deref() == Some(prefix)
}

fn field<'a>(secret: &'a Secret, name: &str, key: &'static str) -> Result<&'a [u8], KeyLoadError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
        .ok_or(KeyLoadError::Missing {
            secret: name.to_string(),
            field: key,
        })
}

/// Loads the key and certificate of a key Secret (PKCS#1 or PKCS#8; only RSA).
pub fn from_secret(secret: &Secret) -> Result<LoadedKey, KeyLoadError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let invalid = |source| KeyLoadError::Invalid {
        secret: name.clone(),
        source,
    };
    let key_pem = String::from_utf8_lossy(field(secret, &name, "tls.key")?).into_owned();
    let cert_pem = String::from_utf8_lossy(field(secret, &name, "tls.crt")?).into_owned();
    let key = PrivateSealingKey::from_pem(&key_pem).map_err(invalid)?;
    let cert = SealingCertificate::from_pem(&cert_pem).map_err(invalid)?;
    if cert.key.fingerprint() != key.fingerprint() {
        return Err(KeyLoadError::Mismatch { secret: name });
    }
    let created = secret
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0));
    Ok(LoadedKey {
        key,
        cert,
        secret_name: name,
        created,
    })
}

/// The ordering time of a key under `order`.
pub fn order_time(key: &LoadedKey, order: KeyOrder) -> DateTime<Utc> {
    match order {
        KeyOrder::CertNotBefore => key.cert.not_before,
        KeyOrder::SecretCreationTimestamp => key.created.unwrap_or(key.cert.not_before),
    }
}

/// The key that seals: the newest under `order`.
pub fn newest(keys: &[LoadedKey], order: KeyOrder) -> Option<&LoadedKey> {
    keys.iter().max_by_key(|k| order_time(k, order))
}

/// Whether a key must be generated at start: none exists, or the newest is older than the cutoff.
pub fn needs_new_key(keys: &[LoadedKey], order: KeyOrder, cutoff: Option<DateTime<Utc>>) -> bool {
    match (newest(keys, order), cutoff) {
        (None, _) => true,
        (Some(k), Some(cutoff)) => order_time(k, order) < cutoff,
        (Some(_), None) => false,
    }
}

/// How long until the next renewal: `period − age(newest)`, never negative.
pub fn until_renewal(
    keys: &[LoadedKey],
    order: KeyOrder,
    period: chrono::Duration,
    now: DateTime<Utc>,
) -> chrono::Duration {
    let age = newest(keys, order).map_or(period, |k| now - order_time(k, order));
    (period - age).max(chrono::Duration::zero())
}

/// The Secret a freshly generated key is stored in (`generateName: <prefix>`).
pub fn key_secret(
    namespace: &str,
    prefix: &str,
    key: &PrivateSealingKey,
    cert_pem: &str,
    extra_labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<Secret, KeyError> {
    let mut labels = extra_labels.clone();
    labels.insert(
        SEALING_KEY_LABEL.to_string(),
        SEALING_KEY_ACTIVE.to_string(),
    );
    let pem = key.to_pkcs1_pem()?;
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(cert_pem.as_bytes().to_vec()),
        ),
        ("tls.key".to_string(), ByteString(pem.as_bytes().to_vec())),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data),
        ..Default::default()
    })
}

/// Parses `k=v,k=v` (`--privatekey-labels`), refusing items without `=` instead of panicking.
pub fn parse_pairs(flag: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{flag}: {item:?} is not key=value"))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::sealing::{KeyGenParams, generate_key_and_cert};

    fn make(now: DateTime<Utc>) -> (Secret, String) {
        let (key, cert) = generate_key_and_cert(&KeyGenParams {
            bits: 2048,
            now,
            ..KeyGenParams::default()
        })
        .unwrap();
        let mut s = key_secret(
            "kube-system",
            "sealed-secrets-key",
            &key,
            &cert.pem,
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .unwrap();
        s.metadata.name = Some(format!("sealed-secrets-key{}", now.timestamp()));
        (s, key.fingerprint().to_string())
    }

    #[test]
    fn key_secret_round_trips_and_has_upstream_shape() {
        let (s, fp) = make(Utc::now());
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            s.metadata.generate_name.as_deref(),
            Some("sealed-secrets-key")
        );
        assert!(is_key_secret(&s, "sealed-secrets-key"));
        let pem = String::from_utf8(s.data.as_ref().unwrap()["tls.key"].0.clone()).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let loaded = from_secret(&s).unwrap();
        assert_eq!(loaded.key.fingerprint().to_string(), fp);
    }

    #[test]
    fn newest_key_and_renewal_timing() {
        let now = Utc::now();
        let old = from_secret(&make(now - chrono::Duration::days(40)).0).unwrap();
        let new = from_secret(&make(now - chrono::Duration::days(10)).0).unwrap();
        let new_fp = new.key.fingerprint().clone();
        let keys = vec![old, new];
        assert_eq!(
            newest(&keys, KeyOrder::CertNotBefore)
                .unwrap()
                .key
                .fingerprint(),
            &new_fp
        );
        let wait = until_renewal(
            &keys,
            KeyOrder::CertNotBefore,
            chrono::Duration::days(30),
            now,
        );
        assert!((wait - chrono::Duration::days(20)).num_seconds().abs() < 5);
        assert!(!needs_new_key(&keys, KeyOrder::CertNotBefore, None));
        assert!(needs_new_key(
            &keys,
            KeyOrder::CertNotBefore,
            Some(now - chrono::Duration::days(1))
        ));
        assert!(needs_new_key(&[], KeyOrder::CertNotBefore, None));
    }

    #[test]
    fn broken_key_secrets_are_reported_without_key_material() {
        let (mut s, _) = make(Utc::now());
        s.data.as_mut().unwrap().remove("tls.key");
        let err = from_secret(&s).unwrap_err().to_string();
        assert!(err.contains("no data.\"tls.key\""), "{err}");
        let (mut s, _) = make(Utc::now());
        let (other, _) = make(Utc::now() - chrono::Duration::days(1));
        s.data
            .as_mut()
            .unwrap()
            .insert("tls.crt".into(), other.data.unwrap()["tls.crt"].clone());
        assert!(matches!(
            from_secret(&s),
            Err(KeyLoadError::Mismatch { .. })
        ));
    }

    #[test]
    fn label_flags_parse_and_reject_items_without_equals() {
        assert_eq!(
            parse_pairs("--privatekey-labels", "a=b, c=d")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_pairs("--privatekey-labels", "a=b,broken").is_err());
    }
}
