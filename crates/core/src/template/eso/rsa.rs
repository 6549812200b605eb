//! `rsaDecrypt SCHEME HASH CIPHERTEXT PRIVATEKEY`: RSA-OAEP decryption (OpenSSL), or `None` to
//! pass the input through. The hash (`SHA1`, `SHA256`, `SHA512`; anything else means SHA-256)
//! is used for OAEP and MGF1 alike, with an empty label, as Go's `rsa.DecryptOAEP`. The
//! private key is the first PEM block, PKCS#1 or PKCS#8.

use super::super::gotmpl::{FuncError, Value};
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey};
use openssl::rsa::Padding;

use super::{binary, bytes_param, failed, pem};
use crate::template::go::{exactly, str_param};

const F: &str = "rsaDecrypt";

/// See the module documentation.
pub(super) fn rsa_decrypt(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, F, 4)?;
    let scheme = str_param(&args[0])?;
    let hash = str_param(&args[1])?;
    let input = bytes_param(args, 2)?;
    let key_pem = str_param(&args[3])?;
    match scheme.as_str() {
        "None" => Ok(Value::String(binary::text_of(input))),
        "RSA-OAEP" => {
            let (block, _) =
                pem::decode(&key_pem).ok_or_else(|| failed(F, "failed to decode PEM block"))?;
            let key = PKey::private_key_from_der(&block.bytes)
                .map_err(|_| failed(F, "could not parse private key"))?;
            if key.id() != Id::RSA {
                return Err(failed(F, "could not parse RSA private key"));
            }
            let md = match hash.as_str() {
                "SHA1" => MessageDigest::sha1(),
                "SHA512" => MessageDigest::sha512(),
                _ => MessageDigest::sha256(),
            };
            let fail = |_| failed(F, "error decrypting data with RSA");
            let mut dec = Decrypter::new(&key).map_err(fail)?;
            dec.set_rsa_padding(Padding::PKCS1_OAEP).map_err(fail)?;
            dec.set_rsa_oaep_md(md).map_err(fail)?;
            dec.set_rsa_mgf1_md(md).map_err(fail)?;
            let mut out = vec![0; dec.decrypt_len(&input).map_err(fail)?];
            let n = dec.decrypt(&input, &mut out).map_err(fail)?;
            out.truncate(n);
            Ok(Value::String(binary::text_of(out)))
        }
        _ => Err(failed(
            F,
            "decryption scheme is not supported (want RSA-OAEP or None)",
        )),
    }
}
