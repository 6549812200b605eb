//! external-secrets' own template functions (its `runtime/template/v2` package), on top of
//! sprig: PEM filtering and certificate chains, PKCS#12, JWK, RSA decryption and `hexdec`.
//!
//! Binary values (a PKCS#12 archive after `b64dec`, a ciphertext, `hexdec`'s result) cannot
//! live in a Rust string; [`binary`] keeps their bytes beside the text for the current render.

pub(super) mod binary;
mod jwk;
mod pem;
mod pkcs12;
mod rsa;

use super::gotmpl::{Func, FuncError, Value};

use super::go::{exactly, str_param};

/// The functions external-secrets adds to sprig (besides `toYaml`/`fromYaml`).
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("filterPEM", pem::filter_pem as Func),
    ("filterCertChain", pem::filter_cert_chain as Func),
    ("certSANs", pem::cert_sans as Func),
    ("pkcs12key", pkcs12::pkcs12key as Func),
    ("pkcs12keyPass", pkcs12::pkcs12key_pass as Func),
    ("pkcs12cert", pkcs12::pkcs12cert as Func),
    ("pkcs12certPass", pkcs12::pkcs12cert_pass as Func),
    ("pemToPkcs12", pkcs12::pem_to_pkcs12 as Func),
    ("pemToPkcs12Pass", pkcs12::pem_to_pkcs12_pass as Func),
    ("fullPemToPkcs12", pkcs12::full_pem_to_pkcs12 as Func),
    (
        "fullPemToPkcs12Pass",
        pkcs12::full_pem_to_pkcs12_pass as Func,
    ),
    ("pemTruststoreToPKCS12", pkcs12::truststore as Func),
    ("pemTruststoreToPKCS12Pass", pkcs12::truststore_pass as Func),
    ("jwkPublicKeyPem", jwk::public_key_pem as Func),
    ("jwkPrivateKeyPem", jwk::private_key_pem as Func),
    ("rsaDecrypt", rsa::rsa_decrypt as Func),
    ("hexdec", hexdec as Func),
];

/// A one-line error naming the function. Callers pass only fixed text or facts about the
/// input's shape, never the input itself.
fn failed(function: &str, what: impl std::fmt::Display) -> FuncError {
    FuncError::Generic(format!("{function}: {what}"))
}

/// String parameter `i` of `count`, as the bytes it stands for (see [`binary`]).
fn bytes_param(args: &[Value], i: usize) -> Result<Vec<u8>, FuncError> {
    Ok(binary::bytes_of(&str_param(&args[i])?))
}

/// `hexdec s`: the bytes a hex string stands for (Go's `hex.DecodeString`; upper and lower
/// case digits). Input that is not hex fails the render.
fn hexdec(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "hexdec", 1)?;
    let text = str_param(&args[0])?;
    let digit = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return Err(failed("hexdec", "odd length hex string"));
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for (i, pair) in bytes.chunks(2).enumerate() {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => {
                return Err(failed(
                    "hexdec",
                    format!("invalid byte at input byte {}", 2 * i),
                ));
            }
        }
    }
    Ok(Value::String(binary::text_of(out)))
}
