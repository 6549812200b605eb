//! Sprig's key, password and cipher functions, with sprig's output formats: `bcrypt` (`$2a$`,
//! cost 10), `genPrivateKey` (PEM as Go's encoders write it), `encryptAES`/`decryptAES`
//! (AES-256-CBC, zero-padded password as key, random IV first, PKCS#7, base64), `randInt` and
//! `adler32sum`.

use base64::Engine as _;
use gtmpl_ng::{Func, FuncError, Value};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::symm::{Cipher, decrypt, encrypt};
use rand_core::TryRng;

use super::args::{arg, failed, text as as_text};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("bcrypt", bcrypt as Func),
    ("genPrivateKey", gen_private_key as Func),
    ("encryptAES", encrypt_aes as Func),
    ("decryptAES", decrypt_aes as Func),
    ("randInt", rand_int as Func),
    ("adler32sum", adler32sum as Func),
    ("randBytes", rand_bytes as Func),
];

/// The operating system's random source (the template engine does not depend on `sealing`).
fn os_rng() -> getrandom::SysRng {
    getrandom::SysRng
}

fn text(args: &[Value], i: usize, function: &str, count: usize) -> Result<String, FuncError> {
    arg(args, i, function, count).map(as_text)
}

/// `bcrypt s`: a `$2a$10$` hash, as Go's `bcrypt.GenerateFromPassword` with the default cost.
fn bcrypt(args: &[Value]) -> Result<Value, FuncError> {
    let input = text(args, 0, "bcrypt", 1)?;
    let hash = ::bcrypt::hash_with_result(input.as_bytes(), 10).map_err(|e| failed("bcrypt", e))?;
    Ok(Value::String(
        hash.format_for_version(::bcrypt::Version::TwoA),
    ))
}

/// `genPrivateKey "rsa"|"ecdsa"|"ed25519"`: a new key in PEM (RSA 4096 PKCS#1, P-256 SEC 1,
/// Ed25519 PKCS#8), as sprig writes them.
fn gen_private_key(args: &[Value]) -> Result<Value, FuncError> {
    let kind = text(args, 0, "genPrivateKey", 1)?;
    let pem = match kind.as_str() {
        "rsa" => Rsa::generate(4096).and_then(|k| k.private_key_to_pem()),
        "ecdsa" => EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .and_then(|g| EcKey::generate(&g))
            .and_then(|k| k.private_key_to_pem()),
        "ed25519" => PKey::generate_ed25519().and_then(|k| k.private_key_to_pem_pkcs8()),
        other => {
            return Err(failed(
                "genPrivateKey",
                format!("unknown key type {other:?} (rsa, ecdsa or ed25519)"),
            ));
        }
    }
    .map_err(|e| failed("genPrivateKey", e))?;
    String::from_utf8(pem)
        .map(Value::String)
        .map_err(|e| failed("genPrivateKey", e))
}

/// The AES-256 key sprig derives: the password's bytes, cut or zero-padded to 32.
fn aes_key(password: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let bytes = password.as_bytes();
    let n = bytes.len().min(32);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

/// `encryptAES password plaintext`: base64 of IV ‖ AES-256-CBC(PKCS#7 padded plaintext).
fn encrypt_aes(args: &[Value]) -> Result<Value, FuncError> {
    let password = text(args, 0, "encryptAES", 2)?;
    let plaintext = text(args, 1, "encryptAES", 2)?;
    if plaintext.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let mut iv = [0u8; 16];
    os_rng()
        .try_fill_bytes(&mut iv)
        .map_err(|_| failed("encryptAES", "the random number generator failed"))?;
    let sealed = encrypt(
        Cipher::aes_256_cbc(),
        &aes_key(&password),
        Some(&iv),
        plaintext.as_bytes(),
    )
    .map_err(|_| failed("encryptAES", "encryption failed"))?;
    let mut out = iv.to_vec();
    out.extend(sealed);
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(out),
    ))
}

/// `decryptAES password ciphertext`: the inverse of `encryptAES`.
fn decrypt_aes(args: &[Value]) -> Result<Value, FuncError> {
    let password = text(args, 0, "decryptAES", 2)?;
    let encoded = text(args, 1, "decryptAES", 2)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| failed("decryptAES", "the ciphertext is not base64"))?;
    if bytes.len() < 32 || bytes.len() % 16 != 0 {
        return Err(failed("decryptAES", "the ciphertext has the wrong length"));
    }
    let (iv, body) = bytes.split_at(16);
    let plain = decrypt(Cipher::aes_256_cbc(), &aes_key(&password), Some(iv), body)
        .map_err(|_| failed("decryptAES", "wrong password or corrupt ciphertext"))?;
    String::from_utf8(plain)
        .map(Value::String)
        .map_err(|_| failed("decryptAES", "the plaintext is not UTF-8"))
}

fn int(args: &[Value], i: usize, function: &str) -> Result<i64, FuncError> {
    let v = text(args, i, function, 2)?;
    v.trim()
        .parse::<i64>()
        .or_else(|_| v.trim().parse::<f64>().map(|f| f as i64))
        .map_err(|_| failed(function, "expected an integer"))
}

/// `randInt min max`: a uniform integer in `[min, max)`.
fn rand_int(args: &[Value]) -> Result<Value, FuncError> {
    let (min, max) = (int(args, 0, "randInt")?, int(args, 1, "randInt")?);
    if max <= min {
        return Err(failed("randInt", "max must be greater than min"));
    }
    let span = max.abs_diff(min);
    let mut rng = os_rng();
    // rejection sampling keeps the distribution uniform
    let zone = u64::MAX - (u64::MAX % span);
    loop {
        let mut b = [0u8; 8];
        rng.try_fill_bytes(&mut b)
            .map_err(|_| failed("randInt", "the random number generator failed"))?;
        let r = u64::from_le_bytes(b);
        if r < zone {
            let offset = r % span;
            return Ok(Value::from(min.wrapping_add_unsigned(offset)));
        }
    }
}

/// `randBytes n`: base64 of n random bytes (at most 64 KiB).
fn rand_bytes(args: &[Value]) -> Result<Value, FuncError> {
    let n = int(args, 0, "randBytes")?;
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= 65_536)
        .ok_or_else(|| failed("randBytes", "the count must be between 0 and 65536"))?;
    let mut bytes = vec![0u8; n];
    os_rng()
        .try_fill_bytes(&mut bytes)
        .map_err(|_| failed("randBytes", "the random number generator failed"))?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// `adler32sum s`: the Adler-32 checksum in decimal.
fn adler32sum(args: &[Value]) -> Result<Value, FuncError> {
    let input = text(args, 0, "adler32sum", 1)?;
    Ok(Value::String(
        adler2::adler32_slice(input.as_bytes()).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn out(v: Value) -> String {
        match v {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    #[test]
    fn aes_round_trips_in_sprigs_format() {
        let sealed = out(encrypt_aes(&[s("secretkey"), s("plaintext")]).unwrap());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        assert_eq!(bytes.len(), 32, "IV and one block");
        assert_eq!(
            out(decrypt_aes(&[s("secretkey"), s(&sealed)]).unwrap()),
            "plaintext"
        );
        assert!(decrypt_aes(&[s("wrong"), s(&sealed)]).is_err());
        // a ciphertext made by sprig's encryptAES "secretkey" "plaintext"
        let iv = [7u8; 16];
        let body = encrypt(
            Cipher::aes_256_cbc(),
            &aes_key("secretkey"),
            Some(&iv),
            b"plaintext",
        )
        .unwrap();
        let mut blob = iv.to_vec();
        blob.extend(body);
        let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
        assert_eq!(
            out(decrypt_aes(&[s("secretkey"), s(&encoded)]).unwrap()),
            "plaintext"
        );
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let hash = out(bcrypt(&[s("hunter2")]).unwrap());
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(::bcrypt::verify("hunter2", &hash).unwrap());
    }

    #[test]
    fn private_keys_in_pem() {
        assert!(
            out(gen_private_key(&[s("ecdsa")]).unwrap()).starts_with("-----BEGIN EC PRIVATE KEY")
        );
        assert!(
            out(gen_private_key(&[s("ed25519")]).unwrap()).starts_with("-----BEGIN PRIVATE KEY")
        );
        assert!(gen_private_key(&[s("dsa")]).is_err());
    }

    #[test]
    fn rand_int_and_adler() {
        for _ in 0..100 {
            let Value::Number(n) = rand_int(&[Value::from(3), Value::from(5)]).unwrap() else {
                unreachable!()
            };
            let n = n.as_i64().unwrap();
            assert!((3..5).contains(&n), "{n}");
        }
        let r = out(rand_bytes(&[Value::from(12)]).unwrap());
        assert_eq!(r.len(), 16, "12 bytes in base64");
        assert!(rand_bytes(&[Value::from(-1)]).is_err());
        // Go: adler32.Checksum([]byte("Wikipedia")) == 300286872
        assert_eq!(out(adler32sum(&[s("Wikipedia")]).unwrap()), "300286872");
    }
}
