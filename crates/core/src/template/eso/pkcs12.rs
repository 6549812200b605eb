//! The PKCS#12 functions: `pkcs12key`, `pkcs12cert` (archive to PEM), `pemToPkcs12`,
//! `fullPemToPkcs12`, `pemTruststoreToPKCS12` (PEM to a base64 archive), each also as `*Pass`
//! with a password. Archives are read and written by `p12-keystore` (pure Rust): PBES2/AES
//! and the legacy RC2-40 and 3DES archives alike, with no OpenSSL legacy provider. Written
//! archives use go-pkcs12's `Modern` settings: AES-256-CBC with PBKDF2-HMAC-SHA-256 and an
//! HMAC-SHA-256 MAC, 2048 iterations each.

use super::super::gotmpl::{FuncError, Value};
use base64::Engine as _;
use openssl::pkey::PKey;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive,
    PrivateKey, PrivateKeyChain,
};

use super::pem::{self, Cert};
use super::{bytes_param, failed};
use crate::template::go::{exactly, str_param};

/// go-pkcs12's `Modern` iteration count for key derivation and the MAC.
const ITERATIONS: u32 = 2048;

/// The one private key and the certificates (leaf first) of an archive, as go-pkcs12's
/// `DecodeChain` finds them: exactly one key and at least one certificate.
fn decode_chain(
    pfx: &[u8],
    password: &str,
    function: &str,
    what: &str,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), FuncError> {
    let bad = |why: &str| {
        failed(
            function,
            format!("unable to decode {what} with password: {why}"),
        )
    };
    let archive = std::panic::catch_unwind(|| Pkcs12Archive::from_pkcs12(pfx, password))
        .map_err(|_| bad("not a PKCS#12 archive"))?
        .map_err(|_| bad("not a PKCS#12 archive, or the password is wrong"))?;
    if archive.keys.len() > 1 {
        return Err(bad("pkcs12: expected exactly one key bag"));
    }
    let certs: Vec<Vec<u8>> = archive
        .certs
        .iter()
        .map(|c| c.cert.as_der().to_vec())
        .collect();
    if certs.is_empty() {
        return Err(bad("pkcs12: certificate missing"));
    }
    let key = archive
        .keys
        .first()
        .ok_or_else(|| bad("pkcs12: private key missing"))?
        .key
        .as_der()
        .to_vec();
    Ok((key, certs))
}

/// A private key as Go's `x509.MarshalPKCS8PrivateKey` writes it, in a `PRIVATE KEY` block.
fn key_pem(pkcs8: &[u8], function: &str) -> Result<String, FuncError> {
    let key = PKey::private_key_from_pkcs8(pkcs8)
        .map_err(|_| failed(function, "unsupported or malformed private key"))?;
    let der = key
        .private_key_to_pkcs8()
        .map_err(|_| failed(function, "cannot encode the private key"))?;
    Ok(pem::encode_der("PRIVATE KEY", &der))
}

fn key_of(args: &[Value], function: &str, with_pass: bool) -> Result<Value, FuncError> {
    exactly(args, function, if with_pass { 2 } else { 1 })?;
    let password = if with_pass {
        str_param(&args[0])?
    } else {
        String::new()
    };
    let pfx = bytes_param(args, args.len() - 1)?;
    let (key, _) = decode_chain(&pfx, &password, function, "pkcs12")?;
    Ok(Value::String(key_pem(&key, function)?))
}

fn cert_of(args: &[Value], function: &str, with_pass: bool) -> Result<Value, FuncError> {
    exactly(args, function, if with_pass { 2 } else { 1 })?;
    let password = if with_pass {
        str_param(&args[0])?
    } else {
        String::new()
    };
    let pfx = bytes_param(args, args.len() - 1)?;
    let (_, certs) = decode_chain(&pfx, &password, function, "pkcs12 certificate")?;
    let parsed: Result<Vec<Cert>, _> = certs.iter().map(|d| Cert::parse(d, function)).collect();
    // ordered when one chain can be made of them, else as stored
    let ordered = match parsed.and_then(|c| pem::order_chain(c, function)) {
        Ok(chain) => chain.into_iter().map(|c| c.der).collect(),
        Err(_) => certs,
    };
    Ok(Value::String(
        ordered
            .iter()
            .map(|d| pem::encode_der("CERTIFICATE", d))
            .collect(),
    ))
}

/// `pkcs12key ARCHIVE`: the archive's private key as PKCS#8 PEM.
pub(super) fn pkcs12key(args: &[Value]) -> Result<Value, FuncError> {
    key_of(args, "pkcs12key", false)
}

/// `pkcs12keyPass PASSWORD ARCHIVE`: `pkcs12key` for an archive with a password.
pub(super) fn pkcs12key_pass(args: &[Value]) -> Result<Value, FuncError> {
    key_of(args, "pkcs12keyPass", true)
}

/// `pkcs12cert ARCHIVE`: the archive's certificates as PEM, ordered leaf to root when they
/// form one chain, else as stored.
pub(super) fn pkcs12cert(args: &[Value]) -> Result<Value, FuncError> {
    cert_of(args, "pkcs12cert", false)
}

/// `pkcs12certPass PASSWORD ARCHIVE`: `pkcs12cert` for an archive with a password.
pub(super) fn pkcs12cert_pass(args: &[Value]) -> Result<Value, FuncError> {
    cert_of(args, "pkcs12certPass", true)
}

/// The first PEM block of `text` (upstream reads it whatever its type).
fn first_block<'a>(
    text: &'a str,
    function: &str,
    what: &str,
) -> Result<(Vec<u8>, &'a str), FuncError> {
    pem::decode(text)
        .map(|(b, rest)| (b.bytes, rest))
        .ok_or_else(|| failed(function, format!("no PEM block in the {what}")))
}

/// The certificates of the PEM blocks of `text`; text that is not a block (other than
/// trailing white space) fails.
fn ca_certs(text: &str, function: &str) -> Result<Vec<Vec<u8>>, FuncError> {
    let (blocks, rest) = pem::decode_all(text);
    if !rest.trim().is_empty() {
        return Err(failed(
            function,
            "the certificates contain text that is not a PEM block",
        ));
    }
    blocks
        .into_iter()
        .map(|b| Cert::parse(&b.bytes, function).map(|c| c.der))
        .collect()
}

/// A private key PEM as PKCS#8 DER: PKCS#1, PKCS#8 or SEC 1, by content (as upstream's
/// `parsePrivateKey`).
fn key_pkcs8(key_pem: &str, function: &str) -> Result<Vec<u8>, FuncError> {
    let (der, _) = first_block(key_pem, function, "key")?;
    let key = PKey::private_key_from_der(&der)
        .map_err(|_| failed(function, "unable to parse private key type"))?;
    key.private_key_to_pkcs8()
        .map_err(|_| failed(function, "cannot encode the private key"))
}

fn write(store: &KeyStore, password: &str, function: &str) -> Result<Value, FuncError> {
    let pfx = store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|_| failed(function, "cannot write the PKCS#12 archive"))?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(pfx),
    ))
}

fn p12_cert(der: &[u8], function: &str) -> Result<Certificate, FuncError> {
    Certificate::from_der(der).map_err(|_| failed(function, pem::go_malformed(der)))
}

/// Key and certificates (leaf first) into a base64 archive.
fn to_pkcs12(
    cert_pem: &str,
    key_pem: &str,
    password: &str,
    full_chain: bool,
    function: &str,
) -> Result<Value, FuncError> {
    let (leaf, rest) = first_block(cert_pem, function, "certificate")?;
    Cert::parse(&leaf, function)?;
    let mut chain = vec![leaf];
    if full_chain {
        chain.extend(ca_certs(rest, function)?);
    }
    let key = key_pkcs8(key_pem, function)?;
    let key =
        PrivateKey::from_der(&key).map_err(|_| failed(function, "unsupported private key"))?;
    let certs: Result<Vec<Certificate>, _> = chain.iter().map(|d| p12_cert(d, function)).collect();
    // go-pkcs12 marks the key and its certificate with the certificate's SHA-1
    let key_id = openssl::sha::sha1(&chain[0]).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        "1",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, key, certs?)),
    );
    write(&store, password, function)
}

/// `pemToPkcs12 CERT KEY`: the first certificate of CERT and KEY as a base64 archive.
pub(super) fn pem_to_pkcs12(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "pemToPkcs12", 2)?;
    let (cert, key) = (str_param(&args[0])?, str_param(&args[1])?);
    to_pkcs12(&cert, &key, "", false, "pemToPkcs12")
}

/// `pemToPkcs12Pass CERT KEY PASSWORD`: `pemToPkcs12` with a password.
pub(super) fn pem_to_pkcs12_pass(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "pemToPkcs12Pass", 3)?;
    let (cert, key) = (str_param(&args[0])?, str_param(&args[1])?);
    let password = str_param(&args[2])?;
    to_pkcs12(&cert, &key, &password, false, "pemToPkcs12Pass")
}

/// `fullPemToPkcs12 CERTS KEY`: a certificate, the chain after it and KEY as a base64
/// archive.
pub(super) fn full_pem_to_pkcs12(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "fullPemToPkcs12", 2)?;
    let (cert, key) = (str_param(&args[0])?, str_param(&args[1])?);
    to_pkcs12(&cert, &key, "", true, "fullPemToPkcs12")
}

/// `fullPemToPkcs12Pass CERTS KEY PASSWORD`: `fullPemToPkcs12` with a password.
pub(super) fn full_pem_to_pkcs12_pass(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "fullPemToPkcs12Pass", 3)?;
    let (cert, key) = (str_param(&args[0])?, str_param(&args[1])?);
    let password = str_param(&args[2])?;
    to_pkcs12(&cert, &key, &password, true, "fullPemToPkcs12Pass")
}

fn trust_store(certs_pem: &str, password: &str, function: &str) -> Result<Value, FuncError> {
    let mut store = KeyStore::new();
    for (i, der) in ca_certs(certs_pem, function)?.iter().enumerate() {
        // trusted certificate entries carry Java's trust attribute, as go-pkcs12's
        // EncodeTrustStore writes them; the alias is the friendly name
        let cert = p12_cert(der, function)?;
        let alias = format!("{}-{i}", cert.subject());
        store.add_entry(&alias, KeyStoreEntry::Certificate(cert));
    }
    write(&store, password, function)
}

/// `pemTruststoreToPKCS12 CERTS`: PEM certificates as a base64 trust store (no key).
pub(super) fn truststore(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "pemTruststoreToPKCS12", 1)?;
    trust_store(&str_param(&args[0])?, "", "pemTruststoreToPKCS12")
}

/// `pemTruststoreToPKCS12Pass CERTS PASSWORD`: `pemTruststoreToPKCS12` with a password.
pub(super) fn truststore_pass(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "pemTruststoreToPKCS12Pass", 2)?;
    let (certs, password) = (str_param(&args[0])?, str_param(&args[1])?);
    trust_store(&certs, &password, "pemTruststoreToPKCS12Pass")
}
