//! `jwkPublicKeyPem` and `jwkPrivateKeyPem`: a JSON Web Key (RFC 7517) as a PKIX `PUBLIC KEY`
//! or PKCS#8 `PRIVATE KEY` block. Keys are built with OpenSSL from the JWK's fields: RSA, EC
//! (P-256, P-384, P-521) and OKP (Ed25519, X25519). As upstream, the public form takes a public
//! JWK and the private form a private one (a JWK with `d`).

use super::super::gotmpl::{FuncError, Value};
use base64::Engine as _;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;
use serde_json::Map;

use super::{failed, pem};
use crate::template::go::{exactly, str_param};

/// A parsed JWK: its public or its private key.
enum Key {
    Public(PKey<Public>),
    Private(PKey<Private>),
}

/// A base64url member (padding and the standard alphabet are accepted too, as jwx does).
fn member(jwk: &Map<String, serde_json::Value>, name: &str, f: &str) -> Result<Vec<u8>, FuncError> {
    let text = jwk
        .get(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            failed(
                f,
                format!("failed to parse key: required field {name:?} is missing"),
            )
        })?;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|e| e.decode(text).ok())
        .ok_or_else(|| {
            failed(
                f,
                format!("failed to parse key: field {name:?} is not base64"),
            )
        })
}

fn bn(jwk: &Map<String, serde_json::Value>, name: &str, f: &str) -> Result<BigNum, FuncError> {
    BigNum::from_slice(&member(jwk, name, f)?).map_err(|_| failed(f, "failed to parse key"))
}

fn parse(text: &str, f: &str) -> Result<Key, FuncError> {
    let invalid = |why: &str| failed(f, format!("failed to parse key: {why}"));
    let jwk: Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|_| invalid("not a JSON object"))?;
    let kty = jwk
        .get("kty")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| invalid("required field \"kty\" is missing"))?;
    let private = jwk.contains_key("d");
    let ssl = |_| invalid("invalid key material");
    match kty {
        "RSA" => {
            let (n, e) = (bn(&jwk, "n", f)?, bn(&jwk, "e", f)?);
            if !private {
                let rsa = Rsa::from_public_components(n, e).map_err(ssl)?;
                return Ok(Key::Public(PKey::from_rsa(rsa).map_err(ssl)?));
            }
            let (d, p, q) = (bn(&jwk, "d", f)?, bn(&jwk, "p", f)?, bn(&jwk, "q", f)?);
            // CRT values computed from d, p and q, as Go's Precompute does
            let mut ctx = BigNumContext::new().map_err(ssl)?;
            let one = BigNum::from_u32(1).map_err(ssl)?;
            let (mut p1, mut q1) = (BigNum::new().map_err(ssl)?, BigNum::new().map_err(ssl)?);
            p1.checked_sub(&p, &one).map_err(ssl)?;
            q1.checked_sub(&q, &one).map_err(ssl)?;
            let (mut dp, mut dq, mut qi) = (
                BigNum::new().map_err(ssl)?,
                BigNum::new().map_err(ssl)?,
                BigNum::new().map_err(ssl)?,
            );
            dp.nnmod(&d, &p1, &mut ctx).map_err(ssl)?;
            dq.nnmod(&d, &q1, &mut ctx).map_err(ssl)?;
            qi.mod_inverse(&q, &p, &mut ctx).map_err(ssl)?;
            let rsa = Rsa::from_private_components(n, e, d, p, q, dp, dq, qi).map_err(ssl)?;
            if !rsa.check_key().unwrap_or(false) {
                return Err(invalid("invalid RSA private key"));
            }
            Ok(Key::Private(PKey::from_rsa(rsa).map_err(ssl)?))
        }
        "EC" => {
            let crv = jwk
                .get("crv")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let nid = match crv {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                "P-521" => Nid::SECP521R1,
                _ => return Err(invalid("unsupported elliptic curve")),
            };
            let group = EcGroup::from_curve_name(nid).map_err(ssl)?;
            let (x, y) = (bn(&jwk, "x", f)?, bn(&jwk, "y", f)?);
            let public = EcKey::from_public_key_affine_coordinates(&group, &x, &y).map_err(ssl)?;
            public.check_key().map_err(ssl)?;
            if !private {
                return Ok(Key::Public(PKey::from_ec_key(public).map_err(ssl)?));
            }
            let d = bn(&jwk, "d", f)?;
            let key =
                EcKey::from_private_components(&group, &d, public.public_key()).map_err(ssl)?;
            key.check_key().map_err(ssl)?;
            Ok(Key::Private(PKey::from_ec_key(key).map_err(ssl)?))
        }
        "OKP" => {
            let id = match jwk.get("crv").and_then(serde_json::Value::as_str) {
                Some("Ed25519") => Id::ED25519,
                Some("X25519") => Id::X25519,
                _ => return Err(invalid("unsupported OKP curve")),
            };
            if private {
                let d = member(&jwk, "d", f)?;
                Ok(Key::Private(
                    PKey::private_key_from_raw_bytes(&d, id).map_err(ssl)?,
                ))
            } else {
                let x = member(&jwk, "x", f)?;
                Ok(Key::Public(
                    PKey::public_key_from_raw_bytes(&x, id).map_err(ssl)?,
                ))
            }
        }
        "oct" => Err(failed(f, "a symmetric (oct) key has no PEM form")),
        _ => Err(invalid("unsupported key type")),
    }
}

/// `jwkPublicKeyPem JWK`: a public JWK as a PKIX `PUBLIC KEY` block.
pub(super) fn public_key_pem(args: &[Value]) -> Result<Value, FuncError> {
    const F: &str = "jwkPublicKeyPem";
    exactly(args, F, 1)?;
    match parse(&str_param(&args[0])?, F)? {
        Key::Public(key) => {
            let der = key
                .public_key_to_der()
                .map_err(|_| failed(F, "cannot encode the public key"))?;
            Ok(Value::String(pem::encode_der("PUBLIC KEY", &der)))
        }
        Key::Private(_) => Err(failed(
            F,
            "x509: unsupported public key type: a private key",
        )),
    }
}

/// `jwkPrivateKeyPem JWK`: a private JWK as a PKCS#8 `PRIVATE KEY` block.
pub(super) fn private_key_pem(args: &[Value]) -> Result<Value, FuncError> {
    const F: &str = "jwkPrivateKeyPem";
    exactly(args, F, 1)?;
    match parse(&str_param(&args[0])?, F)? {
        Key::Private(key) => {
            let der = key
                .private_key_to_pkcs8()
                .map_err(|_| failed(F, "cannot encode the private key"))?;
            Ok(Value::String(pem::encode_der("PRIVATE KEY", &der)))
        }
        Key::Public(_) => Err(failed(
            F,
            "x509: unknown key type while marshaling PKCS#8: a public key",
        )),
    }
}
