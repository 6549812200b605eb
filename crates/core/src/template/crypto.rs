//! Sprig's key, password and cipher functions, with sprig's output formats: `bcrypt` (`$2a$`,
//! cost 10), `genPrivateKey` (PEM as Go's encoders write it), `encryptAES`/`decryptAES`
//! (AES-256-CBC, zero-padded password as key, random IV first, PKCS#7, base64), `randInt` and
//! `adler32sum`.

use super::gotmpl::{Func, FuncError, Value};
use base64::Engine as _;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::symm::{Cipher, Crypter, Mode, encrypt};

use super::args::{arg, failed, text as as_text};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("bcrypt", bcrypt as Func),
    ("htpasswd", htpasswd as Func),
    ("derivePassword", derive_password as Func),
    ("genPrivateKey", gen_private_key as Func),
    ("encryptAES", encrypt_aes as Func),
    ("decryptAES", decrypt_aes as Func),
    ("randInt", rand_int as Func),
    ("adler32sum", adler32sum as Func),
    ("randBytes", rand_bytes as Func),
];

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

/// Fills `buf` from the operating system's random number generator.
pub(super) fn fill_random(buf: &mut [u8], function: &str) -> Result<(), FuncError> {
    openssl::rand::rand_bytes(buf)
        .map_err(|_| failed(function, "the random number generator failed"))
}

/// `htpasswd user password`: `user:` and the password's bcrypt hash, as sprig writes it.
fn htpasswd(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "htpasswd", 2)?;
    let user = super::go::str_param(&args[0])?;
    let password = super::go::str_param(&args[1])?;
    if user.contains(':') {
        return Ok(Value::String(format!("invalid username: {user}")));
    }
    let hash = bcrypt(&[Value::String(password)])?;
    Ok(Value::String(format!("{user}:{}", as_text(&hash))))
}

/// Master Password's templates for each password type, as sprig has them.
const PASSWORD_TEMPLATES: &[(&str, &[&str])] = &[
    ("maximum", &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"]),
    (
        "long",
        &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
    ),
    ("medium", &["CvcnoCvc", "CvcCvcno"]),
    ("short", &["Cvcn"]),
    ("basic", &["aaanaaan", "aannaaan", "aaannaaa"]),
    ("pin", &["nnnn"]),
];

/// The characters each template letter draws from.
fn template_characters(c: u8) -> &'static [u8] {
    match c {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// `derivePassword counter type password user site`: the Master Password algorithm (scrypt
/// N=32768, r=8, p=2 over the user, HMAC-SHA256 over the site and counter), as sprig has it.
fn derive_password(args: &[Value]) -> Result<Value, FuncError> {
    use super::go::{exactly, int_param, str_param};
    exactly(args, "derivePassword", 5)?;
    let counter = int_param(&args[0])?;
    let counter = u32::try_from(counter).map_err(|_| {
        FuncError::Generic("derivePassword: the counter must be an unsigned 32-bit integer".into())
    })?;
    let kind = str_param(&args[1])?;
    let password = str_param(&args[2])?;
    let user = str_param(&args[3])?;
    let site = str_param(&args[4])?;
    let Some((_, templates)) = PASSWORD_TEMPLATES.iter().find(|(k, _)| *k == kind) else {
        return Ok(Value::String(format!(
            "cannot find password template {kind}"
        )));
    };
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let len32 = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut salt = SEED.to_vec();
    salt.extend(len32(&user));
    salt.extend(user.as_bytes());
    let mut key = [0u8; 64];
    openssl::pkcs5::scrypt(
        password.as_bytes(),
        &salt,
        32768,
        8,
        2,
        64 * 1024 * 1024,
        &mut key,
    )
    .map_err(|e| failed("derivePassword", e))?;
    let mut message = SEED.to_vec();
    message.extend(len32(&site));
    message.extend(site.as_bytes());
    message.extend(counter.to_be_bytes());
    let hmac_key = PKey::hmac(&key).map_err(|e| failed("derivePassword", e))?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &hmac_key)
        .map_err(|e| failed("derivePassword", e))?;
    signer
        .update(&message)
        .map_err(|e| failed("derivePassword", e))?;
    let seed = signer
        .sign_to_vec()
        .map_err(|e| failed("derivePassword", e))?;
    let template = templates[usize::from(seed[0]) % templates.len()].as_bytes();
    let out: String = template
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_characters(*c);
            char::from(chars[usize::from(seed[i + 1]) % chars.len()])
        })
        .collect();
    Ok(Value::String(out))
}

/// `genPrivateKey "rsa"|"dsa"|"ecdsa"|"ed25519"`: a new key in PEM (RSA 4096 PKCS#1, DSA
/// 2048/256, P-256 SEC 1, Ed25519 PKCS#8), as sprig writes them; another type gives the text
/// `Unknown type ...`, as in sprig.
fn gen_private_key(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "genPrivateKey", 1)?;
    let kind = super::go::str_param(&args[0])?;
    let pem = match kind.as_str() {
        "" | "rsa" => Rsa::generate(4096).and_then(|k| k.private_key_to_pem()),
        "dsa" => openssl::dsa::Dsa::generate(2048).and_then(|k| k.private_key_to_pem()),
        "ecdsa" => EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
            .and_then(|g| EcKey::generate(&g))
            .and_then(|k| k.private_key_to_pem()),
        "ed25519" => PKey::generate_ed25519().and_then(|k| k.private_key_to_pem_pkcs8()),
        other => return Ok(Value::String(format!("Unknown type {other}"))),
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
    fill_random(&mut iv, "encryptAES")?;
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
/// sprig's `decryptAES`: AES-256-CBC with the IV in front and the padding length in the last
/// byte, which sprig trusts (a wrong password gives other bytes, not an error). Its failures are
/// Go's: the base64 decoder's, and the runtime's for a ciphertext too short or a padding
/// length past the text; none of them quotes the input.
fn decrypt_aes(args: &[Value]) -> Result<Value, FuncError> {
    let password = text(args, 0, "decryptAES", 2)?;
    let encoded = text(args, 1, "decryptAES", 2)?;
    let bytes = super::compat::decode_b64(&encoded).map_err(FuncError::Generic)?;
    let runtime = |what: String| FuncError::Generic(format!("runtime error: {what}"));
    if bytes.len() < 16 {
        return Err(runtime(format!(
            "slice bounds out of range [:16] with capacity {}",
            bytes.len()
        )));
    }
    let (iv, body) = bytes.split_at(16);
    if !body.len().is_multiple_of(16) {
        return Err(FuncError::Generic(
            "crypto/cipher: input not full blocks".into(),
        ));
    }
    let plain = cbc_decrypt(&aes_key(&password), iv, body)
        .map_err(|_| failed("decryptAES", "the cipher failed"))?;
    let Some(&pad) = plain.last() else {
        return Err(runtime("index out of range [-1]".into()));
    };
    let keep = plain.len() as i64 - i64::from(pad);
    if keep < 0 {
        return Err(runtime(format!("slice bounds out of range [:{keep}]")));
    }
    Ok(Value::String(super::eso::binary::text_of(
        plain[..keep as usize].to_vec(),
    )))
}

/// AES-256-CBC without removing padding.
fn cbc_decrypt(key: &[u8], iv: &[u8], body: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut crypter = Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, key, Some(iv))?;
    crypter.pad(false);
    let mut out = vec![0u8; body.len() + 16];
    let n = crypter.update(body, &mut out)?;
    let m = crypter.finalize(&mut out[n..])?;
    out.truncate(n + m);
    Ok(out)
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
    // rejection sampling keeps the distribution uniform
    let zone = u64::MAX - (u64::MAX % span);
    loop {
        let mut b = [0u8; 8];
        fill_random(&mut b, "randInt")?;
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
    fill_random(&mut bytes, "randBytes")?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// `adler32sum s`: the Adler-32 checksum in decimal.
fn adler32sum(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "adler32sum", 1)?;
    let input = super::go::str_param(&args[0])?;
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
        assert_eq!(
            out(gen_private_key(&[s("nope")]).unwrap()),
            "Unknown type nope"
        );
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
        // sprig: derivePassword 1 "long" "password" "user" "example.com"
        assert_eq!(
            out(derive_password(&[
                Value::from(1),
                s("long"),
                s("password"),
                s("user"),
                s("example.com")
            ])
            .unwrap()),
            "ZedaFaxcZaso9*"
        );
        // Go: adler32.Checksum([]byte("Wikipedia")) == 300286872
        assert_eq!(out(adler32sum(&[s("Wikipedia")]).unwrap()), "300286872");
    }
}
