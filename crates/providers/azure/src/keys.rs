//! Certificates and keys in and out of Key Vault: the JWK upstream returns for `key/` objects
//! (its Go struct's member order), a PEM private key as the JWK Key Vault imports, and the
//! leaf certificate of a pushed value (PKCS#12, DER or PEM).

use base64::Engine;
use pkcs1::der::Decode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use strongroom_provider_api::ProviderError;

use crate::config::invalid;

/// A JSON web key as Key Vault sends it; serialized in the member order of upstream's Go
/// type, so `key/` values match upstream byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Jwk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hsm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    /// Upstream's `equalKeys`: same type and the same public numbers (RSA or EC).
    pub fn same_key(&self, other: &Jwk) -> bool {
        let rsa = self.e.is_some() && self.e == other.e && self.n.is_some() && self.n == other.n;
        let ec =
            self.crv == other.crv && self.x.is_some() && self.x == other.x && self.y == other.y;
        self.kty == other.kty && (rsa || ec)
    }
}

fn b64u(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A big-endian integer without its DER sign padding.
fn uint(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    b64u(&bytes[start..])
}

/// The JWK Key Vault imports for a pushed value: an RSA private key in PEM (PKCS#1 or
/// PKCS#8); a value that is not PEM is a symmetric (`oct`) key, as upstream.
pub(crate) fn jwk_from_value(name: &str, value: &[u8]) -> Result<Jwk, ProviderError> {
    let looks_pem = value.windows(11).any(|w| w == b"-----BEGIN ");
    if !looks_pem {
        return Ok(Jwk {
            kty: Some("oct".into()),
            k: Some(b64u(value)),
            ..Jwk::default()
        });
    }
    let bad = |why: &str| invalid(format!("could not load private key {name}: {why}"));
    let key =
        PrivateKeyDer::from_pem_slice(value).map_err(|_| bad("no supported PEM private key"))?;
    let pkcs1_der: Vec<u8> = match &key {
        PrivateKeyDer::Pkcs1(k) => k.secret_pkcs1_der().to_vec(),
        PrivateKeyDer::Pkcs8(k) => {
            let info = pkcs8::PrivateKeyInfoRef::from_der(k.secret_pkcs8_der())
                .map_err(|_| bad("the PKCS#8 key does not parse"))?;
            if info.algorithm.oid != pkcs1::ALGORITHM_OID {
                return Err(bad("only RSA keys can be pushed by Strongroom"));
            }
            info.private_key.as_bytes().to_vec()
        }
        _ => return Err(bad("only RSA keys can be pushed by Strongroom")),
    };
    let rsa = pkcs1::RsaPrivateKey::<pkcs1::UintRef<'_>>::from_der(&pkcs1_der)
        .map_err(|_| bad("the RSA key does not parse"))?;
    Ok(Jwk {
        kty: Some("RSA".into()),
        n: Some(uint(rsa.modulus.as_bytes())),
        e: Some(uint(rsa.public_exponent.as_bytes())),
        d: Some(uint(rsa.private_exponent.as_bytes())),
        dp: Some(uint(rsa.exponent1.as_bytes())),
        dq: Some(uint(rsa.exponent2.as_bytes())),
        qi: Some(uint(rsa.coefficient.as_bytes())),
        p: Some(uint(rsa.prime1.as_bytes())),
        q: Some(uint(rsa.prime2.as_bytes())),
        ..Jwk::default()
    })
}

/// The certificate of a pushed value, as upstream reads it: PKCS#12 (no password), then
/// DER, then the first PEM certificate. Returns its DER.
pub(crate) fn certificate_der(name: &str, value: &[u8]) -> Result<Vec<u8>, ProviderError> {
    if let Ok(store) =
        p12_keystore::KeyStore::from_pkcs12(value, "", p12_keystore::Pkcs12ImportPolicy::Relaxed)
        && let Some((_, chain)) = store.private_key_chain()
        && let Some(cert) = chain.certs().first()
    {
        return Ok(cert.as_der().to_vec());
    }
    if value.first() == Some(&0x30) && p12_keystore::Certificate::from_der(value).is_ok() {
        return Ok(value.to_vec());
    }
    CertificateDer::pem_slice_iter(value)
        .find_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| {
            invalid(format!(
                "value from secret {name} is not a valid certificate: could not parse certificate value as PKCS#12, DER or PEM"
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn jwk_member_order_is_upstreams() {
        let k = Jwk {
            kid: Some("https://v/keys/k/1".into()),
            kty: Some("RSA".into()),
            key_ops: Some(vec!["verify".into()]),
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        };
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            r#"{"kid":"https://v/keys/k/1","kty":"RSA","key_ops":["verify"],"n":"AQAB","e":"AQAB"}"#
        );
        assert_eq!(
            jwk_from_value("k", b"raw").unwrap().kty.as_deref(),
            Some("oct")
        );
        assert!(
            jwk_from_value(
                "k",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(certificate_der("c", b"canary").is_err_and(|e| !e.to_string().contains("canary")));
    }
}
