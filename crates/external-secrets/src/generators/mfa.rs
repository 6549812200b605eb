//! The MFA generator: a TOTP code (RFC 6238) from a base32 seed kept in a Secret, as upstream
//! computes it.
//!
//! Outputs (as upstream): `token`, the code zero-padded to `length` digits, and `timeLeft`,
//! the seconds until the code's time step ends, in decimal.
//!
//! Spec fields: `secret` (name and key of a Secret in the ExternalSecret's namespace; its
//! `namespace` is not read, as upstream), `length` (6 when absent or not positive),
//! `timePeriod` (30 seconds when absent or not positive) and `when` (an RFC 3339 time to
//! compute the code for instead of now). `algorithm` is accepted and, as upstream's
//! generator does, not applied: codes are always HMAC-SHA-1, so a drop-in switch produces
//! the same codes.
//!
//! The seed has its spaces removed and is upper-cased, line breaks are skipped and it is
//! decoded as unpadded base32; errors give the position of a bad character, never the seed.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde::Deserialize;
use strongroom_provider_api::{SecretBytes, SecretMap};
use zeroize::Zeroizing;

/// Code length when the spec names none.
const DEFAULT_LENGTH: usize = 6;
/// Time step in seconds when the spec names none.
const DEFAULT_PERIOD: i64 = 30;
/// The longest code made (upstream has no limit; this keeps a typo from filling memory).
const MAX_LENGTH: usize = 4096;

/// The MFA spec fields upstream reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    secret: Selector,
    length: Option<i64>,
    time_period: Option<i64>,
    /// Type-checked as upstream does, then not applied (see the module docs).
    #[serde(rename = "algorithm")]
    _algorithm: Option<String>,
    when: Option<String>,
}

/// `spec.secret`.
#[derive(Deserialize, Default)]
struct Selector {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// What a code is computed from besides the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    length: usize,
    period: i64,
    /// Unix seconds to compute the code for; now when `None`.
    when: Option<i64>,
}

/// Reads `spec` (as written in the generator object).
fn parse(spec: &BTreeMap<String, serde_json::Value>) -> Result<(Selector, Params), String> {
    let spec: Spec = super::parse_spec(spec)?;
    let length = match spec.length {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => DEFAULT_LENGTH,
    };
    if length > MAX_LENGTH {
        return Err(format!(
            "failed to generate code for token key: length too big ({length}, at most {MAX_LENGTH})"
        ));
    }
    let period = spec
        .time_period
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PERIOD);
    let when = spec
        .when
        .map(|w| {
            chrono::DateTime::parse_from_rfc3339(&w)
                .map(|t| t.timestamp())
                .map_err(|e| format!("unable to parse spec: when {w:?}: {e}"))
        })
        .transpose()?;
    Ok((
        spec.secret,
        Params {
            length,
            period,
            when,
        },
    ))
}

/// The value of a base32 character (RFC 4648 alphabet, upper case).
fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decodes unpadded base32 as Go's decoder does: line breaks are skipped, trailing bits that
/// do not fill a byte are dropped; an error gives the position of the first bad character.
fn decode_base32(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, usize> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let symbols = text.iter().filter(|c| !matches!(c, b'\r' | b'\n'));
    for (position, &c) in symbols.enumerate() {
        let v = base32_value(c).ok_or(position)?;
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

/// The HOTP value (RFC 4226) of `key` at `counter` with `M`'s HMAC, in `length` digits.
fn hotp<M: Mac + KeyInit>(key: &[u8], counter: u64, length: usize) -> Result<String, String> {
    let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(&counter.to_be_bytes());
    let sum = mac.finalize().into_bytes();
    let offset = usize::from(sum[sum.len() - 1] & 0xf);
    let word = sum
        .get(offset..offset + 4)
        .ok_or("digest too short for dynamic truncation")?;
    let value = u32::from_be_bytes([word[0], word[1], word[2], word[3]]) & 0x7fff_ffff;
    // 10^10 is beyond any 31-bit value, so longer codes are the value zero-padded
    let code = match u32::try_from(length)
        .ok()
        .and_then(|l| 10u64.checked_pow(l))
    {
        Some(modulus) => u64::from(value) % modulus,
        None => u64::from(value),
    };
    Ok(format!("{code:0length$}"))
}

/// The TOTP code (RFC 6238) of the base32 `seed` at Unix time `now` with `M`'s HMAC, and the
/// seconds left in its time step. Errors never contain the seed.
fn totp<M: Mac + KeyInit>(
    seed: &[u8],
    now: i64,
    params: Params,
) -> Result<(String, String), String> {
    let failed = |e: String| format!("failed to generate code for token key: {e}");
    let cleaned: Zeroizing<String> = Zeroizing::new(
        String::from_utf8_lossy(seed)
            .replace(' ', "")
            .to_uppercase(),
    );
    let key = decode_base32(cleaned.as_bytes()).map_err(|at| {
        failed(format!(
            "failed to generate OTP code: illegal base32 data at input byte {at}"
        ))
    })?;
    let counter = now.div_euclid(params.period) as u64;
    let left = params.period - now % params.period;
    let code = hotp::<M>(&key, counter, params.length).map_err(failed)?;
    Ok((code, left.to_string()))
}

/// The outputs for `seed` at Unix time `now`.
fn outputs(seed: &[u8], now: i64, params: Params) -> Result<SecretMap, String> {
    let (token, left) = totp::<Hmac<sha1::Sha1>>(seed, params.when.unwrap_or(now), params)?;
    Ok(BTreeMap::from([
        ("token".to_string(), SecretBytes::from(token.as_str())),
        ("timeLeft".to_string(), SecretBytes::from(left.as_str())),
    ]))
}

/// Runs the MFA generator on `spec`, reading the seed from a Secret in `namespace`.
pub(crate) async fn generate(
    client: &kube::Client,
    namespace: &str,
    spec: &BTreeMap<String, serde_json::Value>,
) -> Result<SecretMap, String> {
    let (selector, params) = parse(spec)?;
    if selector.name.is_empty() {
        return Err(
            "failed to find secret for token key: resource name may not be empty".to_string(),
        );
    }
    let what = format!("Secret {namespace}/{}", selector.name);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&selector.name)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => {
                format!("failed to find secret for token key: {what} not found")
            }
            other => format!("failed to find secret for token key: reading {what}: {other}"),
        })?;
    let seed = secret
        .data
        .and_then(|mut d| d.remove(&selector.key))
        .map(|b| Zeroizing::new(b.0))
        .ok_or_else(|| {
            format!(
                "secret key {} does not exist in secret data map",
                selector.key
            )
        })?;
    outputs(&seed, chrono::Utc::now().timestamp(), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sha2::{Sha256, Sha512};

    const EIGHT: Params = Params {
        length: 8,
        period: 30,
        when: None,
    };

    /// RFC 6238 appendix B: the seeds are the ASCII digits repeated to the hash's size.
    #[test]
    fn rfc_6238_test_vectors() {
        let sha1_seed = b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
        let raw32 = b"12345678901234567890123456789012";
        let raw64 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let vectors: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in vectors {
            let got = totp::<Hmac<sha1::Sha1>>(sha1_seed, t, EIGHT).unwrap();
            assert_eq!(got.0, sha1, "SHA-1 at {t}");
            assert_eq!(got.1, (30 - t % 30).to_string());
            let counter = (t / 30) as u64;
            assert_eq!(
                hotp::<Hmac<Sha256>>(raw32, counter, 8).unwrap(),
                sha256,
                "SHA-256 at {t}"
            );
            assert_eq!(
                hotp::<Hmac<Sha512>>(raw64, counter, 8).unwrap(),
                sha512,
                "SHA-512 at {t}"
            );
        }
    }

    #[test]
    fn the_spec_drives_length_period_and_time() {
        let spec = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
            serde_json::from_value(v).unwrap()
        };
        let (selector, params) = parse(&spec(json!({
            "secret": {"name": "seed", "key": "otp"},
            "length": 8, "algorithm": "sha256", "when": "1970-01-01T00:00:59Z"
        })))
        .unwrap();
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("seed", "otp")
        );
        assert_eq!(
            params,
            Params {
                length: 8,
                period: 30,
                when: Some(59)
            }
        );
        // lower case, spaces and a trailing newline are tolerated; algorithm is not applied
        let out = outputs(b"gezd gnbv gy3t qojq gezd gnbv gy3t qojq\n", 0, params).unwrap();
        assert_eq!(out["token"].expose(), b"94287082");
        assert_eq!(out["timeLeft"].expose(), b"1");
        // defaults: 6 digits, 30 s; zero and negative values mean the default
        let (_, params) = parse(&spec(
            json!({"secret": {"name": "s", "key": "k"}, "length": 0, "timePeriod": -5}),
        ))
        .unwrap();
        assert_eq!(
            params,
            Params {
                length: 6,
                period: 30,
                when: None
            }
        );
        let out = outputs(b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59, params).unwrap();
        assert_eq!(out["token"].expose(), b"287082");
        // a 60 s period and codes longer than the 31-bit value
        let p = Params {
            length: 12,
            period: 60,
            when: Some(59),
        };
        let out = outputs(b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0, p).unwrap();
        assert_eq!(out["timeLeft"].expose(), b"1");
        assert_eq!(out["token"].expose().len(), 12);
        assert!(out["token"].expose().starts_with(b"00"));
    }

    #[test]
    fn bad_seeds_and_specs_name_the_problem_not_the_seed() {
        let canary = strongroom_testkit::CANARY.as_bytes();
        let err = outputs(canary, 0, EIGHT).err().unwrap();
        assert_eq!(
            err,
            "failed to generate code for token key: failed to generate OTP code: illegal base32 data at input byte 6"
        );
        strongroom_testkit::assert_no_canary(&[], &[("error", &err)]);
        // padding is not accepted, as upstream's unpadded decoder
        let err = outputs(b"GEZDGNBV====", 0, EIGHT).err().unwrap();
        assert!(err.ends_with("input byte 8"), "{err}");
        let spec = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
            serde_json::from_value(v).unwrap()
        };
        assert!(
            parse(&spec(json!({"length": "six"})))
                .err()
                .unwrap()
                .starts_with("unable to parse spec: ")
        );
        assert!(
            parse(&spec(json!({"when": "yesterday"})))
                .err()
                .unwrap()
                .starts_with("unable to parse spec: ")
        );
        assert!(
            parse(&spec(json!({"length": 100_000})))
                .err()
                .unwrap()
                .contains("length too big")
        );
    }

    #[test]
    fn base32_decodes_like_gos_unpadded_decoder() {
        assert_eq!(decode_base32(b"MZXW6YTBOI").unwrap().as_slice(), b"foobar");
        assert_eq!(decode_base32(b"MZXW\r\n6YQ").unwrap().as_slice(), b"foob");
        assert_eq!(decode_base32(b"").unwrap().as_slice(), b"");
        assert_eq!(decode_base32(b"MZXW1").err(), Some(4));
    }
}
