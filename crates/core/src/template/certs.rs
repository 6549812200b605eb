//! Sprig's certificate functions (`genCA`, `genSelfSignedCert`, `genSignedCert`, their
//! `*WithKey` forms and `buildCustomCert`), with sprig's output: a fresh key is RSA 2048 in
//! PKCS#1 (`RSA PRIVATE KEY`), a given key keeps its kind, the certificate carries a random
//! 128-bit serial, the common name as its subject, key usage (digital signature, key
//! encipherment, and certificate signing for a CA), server and client auth, and the names given.

use std::collections::HashMap;

use super::gotmpl::{Func, FuncError, Value};
use base64::Engine as _;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

use super::go::{exactly, int_param, is_nil, str_param, strval};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("genCA", gen_ca as Func),
    ("genCAWithKey", gen_ca_with_key as Func),
    ("genSelfSignedCert", gen_self_signed as Func),
    ("genSelfSignedCertWithKey", gen_self_signed_with_key as Func),
    ("genSignedCert", gen_signed as Func),
    ("genSignedCertWithKey", gen_signed_with_key as Func),
    ("buildCustomCert", build_custom_cert as Func),
];

fn failed(what: impl std::fmt::Display) -> FuncError {
    FuncError::Generic(what.to_string())
}

fn ssl(context: &'static str) -> impl Fn(openssl::error::ErrorStack) -> FuncError {
    move |e| failed(format!("{context}: {e}"))
}

/// A key in sprig's PEM form for its kind.
fn key_pem(key: &PKey<Private>) -> Result<String, FuncError> {
    let pem = match key.id() {
        Id::RSA => key.rsa().and_then(|k| k.private_key_to_pem()),
        Id::EC => key.ec_key().and_then(|k| k.private_key_to_pem()),
        Id::DSA => key.dsa().and_then(|k| k.private_key_to_pem()),
        _ => key.private_key_to_pem_pkcs8(),
    }
    .map_err(ssl("error encoding the private key"))?;
    String::from_utf8(pem).map_err(failed)
}

/// sprig's `parsePrivateKeyPEM`: PKCS#8, or PKCS#1/SEC 1/DSA by the block's type.
fn parse_key(pem: &str) -> Result<PKey<Private>, FuncError> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or_else(|| failed("no PEM data in input"))?;
    let kind = pem[begin + 11..]
        .split("-----")
        .next()
        .unwrap_or_default()
        .to_string();
    let bytes = pem.as_bytes();
    match kind.as_str() {
        "PRIVATE KEY" => PKey::private_key_from_pem(bytes)
            .map_err(|e| failed(format!("decoding PEM as PKCS#8: {e}"))),
        "RSA PRIVATE KEY" => Rsa::private_key_from_pem(bytes)
            .and_then(PKey::from_rsa)
            .map_err(|e| failed(format!("parsing RSA private key from PEM: {e}"))),
        "EC PRIVATE KEY" => openssl::ec::EcKey::private_key_from_pem(bytes)
            .and_then(PKey::from_ec_key)
            .map_err(|e| failed(format!("parsing EC private key from PEM: {e}"))),
        "DSA PRIVATE KEY" => PKey::private_key_from_pem(bytes)
            .map_err(|e| failed(format!("parsing DSA private key from PEM: {e}"))),
        other if other.ends_with(" PRIVATE KEY") => {
            Err(failed(format!("invalid private key type {other}")))
        }
        other => Err(failed(format!(
            "no private key data in PEM block of type {other}"
        ))),
    }
}

fn new_rsa() -> Result<PKey<Private>, FuncError> {
    Rsa::generate(2048)
        .and_then(PKey::from_rsa)
        .map_err(ssl("error generating rsa key"))
}

/// The IP addresses and DNS names of a certificate request (lists of strings, or nil).
fn names(ips: &Value, dns: &Value) -> Result<(Vec<String>, Vec<String>), FuncError> {
    let list = |v: &Value, what: &str| -> Result<Vec<String>, FuncError> {
        match v {
            v if is_nil(v) => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(failed(format!(
                        "error processing {what}: {} is not a string",
                        strval(other)
                    ))),
                })
                .collect(),
            other => Err(failed(format!(
                "wrong type for value; expected []interface {{}}; got {}",
                super::go::type_name(other)
            ))),
        }
    };
    let ips = list(ips, "ip")?;
    for ip in &ips {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(failed(format!("error parsing ip: {ip}")));
        }
    }
    Ok((ips, list(dns, "alternate DNS")?))
}

/// The issuer of a signed certificate: its certificate and key.
struct Signer {
    cert: X509,
    key: PKey<Private>,
}

fn digest(key: &PKey<Private>) -> MessageDigest {
    match key.id() {
        Id::ED25519 | Id::ED448 => MessageDigest::null(),
        _ => MessageDigest::sha256(),
    }
}

/// Builds and signs a certificate; returns sprig's `certificate` (`.Cert`, `.Key`).
fn certificate(
    cn: &str,
    ips: &[String],
    dns: &[String],
    days: i64,
    ca: bool,
    key: &PKey<Private>,
    signer: Option<&Signer>,
) -> Result<Value, FuncError> {
    let err = ssl("error creating certificate");
    let mut name = X509NameBuilder::new().map_err(&err)?;
    name.append_entry_by_text("CN", cn).map_err(&err)?;
    let name = name.build();
    let mut b = X509::builder().map_err(&err)?;
    b.set_version(2).map_err(&err)?;
    let mut serial = BigNum::new().map_err(&err)?;
    serial
        .rand(128, MsbOption::MAYBE_ZERO, false)
        .map_err(&err)?;
    let serial = Asn1Integer::from_bn(&serial).map_err(&err)?;
    b.set_serial_number(&serial).map_err(&err)?;
    b.set_subject_name(&name).map_err(&err)?;
    match signer {
        Some(s) => b.set_issuer_name(s.cert.subject_name()).map_err(&err)?,
        None => b.set_issuer_name(&name).map_err(&err)?,
    }
    let now = chrono::Utc::now().timestamp();
    let until = days
        .checked_mul(86_400)
        .and_then(|d| d.checked_add(now))
        .filter(|t| (-62_135_596_800..=253_402_300_799).contains(t))
        .ok_or_else(|| failed("error creating certificate: the validity is out of range"))?;
    let (from, to) = (
        Asn1Time::from_unix(now).map_err(&err)?,
        Asn1Time::from_unix(until).map_err(&err)?,
    );
    b.set_not_before(&from).map_err(&err)?;
    b.set_not_after(&to).map_err(&err)?;
    b.set_pubkey(key).map_err(&err)?;
    let mut usage = KeyUsage::new();
    usage.critical().digital_signature().key_encipherment();
    if ca {
        usage.key_cert_sign();
    }
    b.append_extension(usage.build().map_err(&err)?)
        .map_err(&err)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .map_err(&err)?,
    )
    .map_err(&err)?;
    let mut constraints = BasicConstraints::new();
    constraints.critical();
    if ca {
        constraints.ca();
    }
    b.append_extension(constraints.build().map_err(&err)?)
        .map_err(&err)?;
    if ca {
        let skid = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .map_err(&err)?;
        b.append_extension(skid).map_err(&err)?;
    }
    if let Some(s) = signer {
        let akid = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&s.cert), None))
            .map_err(&err)?;
        b.append_extension(akid).map_err(&err)?;
    }
    if !ips.is_empty() || !dns.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for d in dns {
            san.dns(d);
        }
        for ip in ips {
            san.ip(ip);
        }
        let san = san
            .build(&b.x509v3_context(signer.map(|s| s.cert.as_ref()), None))
            .map_err(&err)?;
        b.append_extension(san).map_err(&err)?;
    }
    let signing_key = signer.map_or(key, |s| &s.key);
    b.sign(signing_key, digest(signing_key)).map_err(&err)?;
    let cert = b.build().to_pem().map_err(&err)?;
    Ok(super::go::map_value(HashMap::from([
        (
            "Cert".to_string(),
            Value::String(String::from_utf8(cert).map_err(failed)?),
        ),
        ("Key".to_string(), Value::String(key_pem(key)?)),
    ])))
}

fn gen_ca(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genCA", 2)?;
    let cn = str_param(&args[0])?;
    let days = int_param(&args[1])?;
    certificate(&cn, &[], &[], days, true, &new_rsa()?, None)
}

fn gen_ca_with_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genCAWithKey", 3)?;
    let cn = str_param(&args[0])?;
    let days = int_param(&args[1])?;
    let key = parse_key(&str_param(&args[2])?)
        .map_err(|e| failed(format!("parsing private key: {e}")))?;
    certificate(&cn, &[], &[], days, true, &key, None)
}

fn gen_self_signed(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genSelfSignedCert", 4)?;
    let cn = str_param(&args[0])?;
    let (ips, dns) = names(&args[1], &args[2])?;
    let days = int_param(&args[3])?;
    certificate(&cn, &ips, &dns, days, false, &new_rsa()?, None)
}

fn gen_self_signed_with_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genSelfSignedCertWithKey", 5)?;
    let cn = str_param(&args[0])?;
    let (ips, dns) = names(&args[1], &args[2])?;
    let days = int_param(&args[3])?;
    let key = parse_key(&str_param(&args[4])?)
        .map_err(|e| failed(format!("parsing private key: {e}")))?;
    certificate(&cn, &ips, &dns, days, false, &key, None)
}

/// The CA a signed certificate names: sprig's `certificate` value.
fn signer(ca: &Value) -> Result<Signer, FuncError> {
    let field = |k: &str| match ca {
        Value::Map(m) | Value::Object(m) => m.get(k).as_ref().map(strval).unwrap_or_default(),
        _ => String::new(),
    };
    let cert = X509::from_pem(field("Cert").as_bytes())
        .map_err(|_| failed("unable to decode certificate"))?;
    let key =
        parse_key(&field("Key")).map_err(|e| failed(format!("error parsing private key: {e}")))?;
    Ok(Signer { cert, key })
}

fn gen_signed(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genSignedCert", 5)?;
    let cn = str_param(&args[0])?;
    let (ips, dns) = names(&args[1], &args[2])?;
    let days = int_param(&args[3])?;
    let ca = signer(&args[4])?;
    certificate(&cn, &ips, &dns, days, false, &new_rsa()?, Some(&ca))
}

fn gen_signed_with_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "genSignedCertWithKey", 6)?;
    let cn = str_param(&args[0])?;
    let (ips, dns) = names(&args[1], &args[2])?;
    let days = int_param(&args[3])?;
    let ca = signer(&args[4])?;
    let key = parse_key(&str_param(&args[5])?)
        .map_err(|e| failed(format!("parsing private key: {e}")))?;
    certificate(&cn, &ips, &dns, days, false, &key, Some(&ca))
}

fn build_custom_cert(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "buildCustomCert", 2)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let cert = b64
        .decode(str_param(&args[0])?)
        .map_err(|_| failed("unable to decode base64 certificate"))?;
    let key = b64
        .decode(str_param(&args[1])?)
        .map_err(|_| failed("unable to decode base64 private key"))?;
    X509::from_pem(&cert).map_err(|_| failed("unable to decode certificate"))?;
    let key = String::from_utf8_lossy(&key).into_owned();
    parse_key(&key).map_err(|e| failed(format!("error parsing private key: {e}")))?;
    Ok(super::go::map_value(HashMap::from([
        (
            "Cert".to_string(),
            Value::String(String::from_utf8_lossy(&cert).into_owned()),
        ),
        ("Key".to_string(), Value::String(key)),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &Value, k: &str) -> String {
        match v {
            Value::Map(m) | Value::Object(m) => m.get(k).as_ref().map(strval).unwrap_or_default(),
            _ => String::new(),
        }
    }

    #[test]
    fn certificates_in_sprigs_shape() {
        let ca = gen_ca(&[Value::String("ca".into()), Value::from(1)]).unwrap();
        assert!(field(&ca, "Key").starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let ec = PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let ec_pem = key_pem(&ec).unwrap();
        let signed = gen_signed_with_key(&[
            Value::String("x".into()),
            Value::Array(vec![Value::String("10.0.0.1".into())].into()),
            Value::Nil,
            Value::from(1),
            ca,
            Value::String(ec_pem.clone()),
        ])
        .unwrap();
        assert_eq!(field(&signed, "Key"), ec_pem);
        let cert = X509::from_pem(field(&signed, "Cert").as_bytes()).unwrap();
        assert_eq!(cert.subject_alt_names().unwrap().len(), 1);
        assert!(
            gen_self_signed(&[
                Value::String("x".into()),
                Value::Array(vec![Value::String("not-an-ip".into())].into()),
                Value::Nil,
                Value::from(1),
            ])
            .is_err()
        );
    }
}
