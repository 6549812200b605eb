//! Sealing certificates: generation (upstream's shape) and parsing.

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Builder, X509NameBuilder};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::KeyError;
use super::keys::{PrivateSealingKey, PublicSealingKey};

/// A certificate read from PEM: its public key and validity.
#[derive(Debug, Clone)]
pub struct SealingCertificate {
    /// The RSA public key that seals.
    pub key: PublicSealingKey,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity; upstream kubeseal refuses to seal after it.
    pub not_after: DateTime<Utc>,
    /// The PEM text of the (first) certificate.
    pub pem: String,
}

impl SealingCertificate {
    /// Parses the first certificate of a PEM bundle. Any key usage is accepted (upstream's
    /// certificates carry encipherOnly without keyAgreement, which strict parsers refuse).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|_| KeyError::NoPem {
                expected: "CERTIFICATE",
            })?;
        if pem.label != "CERTIFICATE" {
            return Err(KeyError::NoPem {
                expected: "CERTIFICATE",
            });
        }
        let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|e| KeyError::Parse {
            what: "certificate",
            reason: e.to_string(),
        })?;
        let key = PublicSealingKey::from_spki_der(cert.public_key().raw)?;
        let validity = cert.validity();
        let to_chrono = |t: x509_parser::time::ASN1Time| {
            DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or_default()
        };
        let armoured = pem_text
            .find("-----BEGIN CERTIFICATE-----")
            .and_then(|start| {
                let rest = &pem_text[start..];
                rest.find("-----END CERTIFICATE-----")
                    .map(|end| format!("{}\n", &rest[..end + "-----END CERTIFICATE-----".len()]))
            })
            .unwrap_or_default();
        Ok(Self {
            key,
            not_before: to_chrono(validity.not_before),
            not_after: to_chrono(validity.not_after),
            pem: armoured,
        })
    }

    /// Whether the certificate has expired at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now > self.not_after
    }
}

/// How to generate a sealing key and its certificate (controller flags `--key-size`,
/// `--key-ttl`, `--my-cn`).
#[derive(Debug, Clone)]
pub struct KeyGenParams {
    /// RSA modulus size.
    pub bits: usize,
    /// Certificate lifetime.
    pub ttl: Duration,
    /// Common name of issuer and subject; empty gives an empty DN, as upstream.
    pub common_name: String,
    /// Start of validity.
    pub now: DateTime<Utc>,
}

impl Default for KeyGenParams {
    fn default() -> Self {
        Self {
            bits: 4096,
            ttl: Duration::hours(87_600),
            common_name: String::new(),
            now: Utc::now(),
        }
    }
}

/// Generates a key pair and a self-signed certificate shaped like upstream's: random 128-bit
/// serial, critical KeyUsage encipherOnly, critical BasicConstraints CA, a SubjectKeyIdentifier,
/// sha256WithRSAEncryption.
pub fn generate_key_and_cert(
    params: &KeyGenParams,
) -> Result<(PrivateSealingKey, SealingCertificate), KeyError> {
    let key = PrivateSealingKey::generate(params.bits)?;
    let pem = self_signed_certificate(&key, params)?;
    let cert = SealingCertificate::from_pem(&pem)?;
    Ok((key, cert))
}

/// Issues upstream's self-signed certificate for an existing key.
pub fn self_signed_certificate(
    key: &PrivateSealingKey,
    params: &KeyGenParams,
) -> Result<String, KeyError> {
    build_certificate(key, params).map_err(|e| {
        KeyError::Generate(
            e.errors()
                .first()
                .and_then(|x| x.reason())
                .unwrap_or("certificate signing failed")
                .to_string(),
        )
    })
}

fn build_certificate(
    key: &PrivateSealingKey,
    params: &KeyGenParams,
) -> Result<String, openssl::error::ErrorStack> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    builder.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    let mut name = X509NameBuilder::new()?;
    if !params.common_name.is_empty() {
        name.append_entry_by_nid(Nid::COMMONNAME, &params.common_name)?;
    }
    let name = name.build();
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key.pkey())?;
    let not_after = params.now + params.ttl;
    builder.set_not_before(Asn1Time::from_unix(params.now.timestamp())?.as_ref())?;
    builder.set_not_after(Asn1Time::from_unix(not_after.timestamp())?.as_ref())?;
    builder.append_extension(KeyUsage::new().critical().encipher_only().build()?)?;
    builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    builder.sign(key.pkey(), MessageDigest::sha256())?;
    let pem = builder.build().to_pem()?;
    Ok(String::from_utf8_lossy(&pem).into_owned())
}
