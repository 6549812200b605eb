//! Sealing crypto: known answers computed by an independent implementation
//! (`tests/fixtures/sealing/make_kat.py`), round trips per scope, and every failure mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::path::PathBuf;

use base64::Engine;
use rsa::rand_core::{TryCryptoRng, TryRng};
use strongroom_core::sealing::{
    Fingerprint, KeyGenParams, KeyRing, PrivateSealingKey, SealTarget, SealingCertificate,
    SealingScope, UnsealError, generate_key_and_cert, os_rng, seal_bytes, seal_to_base64,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/sealing")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A "random" source that replays a fixed stream, then zeros.
struct Replay {
    bytes: Vec<u8>,
    pos: usize,
}

impl TryRng for Replay {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            *d = self.bytes.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
        }
        Ok(())
    }
}
impl TryCryptoRng for Replay {}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn target<'a>(scope: SealingScope, namespace: &'a str, name: &'a str) -> SealTarget<'a> {
    SealTarget {
        scope,
        namespace,
        name,
    }
}

fn ring_of(keys: Vec<PrivateSealingKey>) -> KeyRing {
    let mut ring = KeyRing::new();
    for k in keys {
        ring.insert(k);
    }
    ring
}

#[test]
fn known_answers_match_independent_implementation() {
    let cases: serde_json::Value = serde_json::from_str(&fixture("kat.json")).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let key = PrivateSealingKey::from_pem(&fixture(case["key"].as_str().unwrap())).unwrap();
        let scope: SealingScope = case["scope"].as_str().unwrap().parse().unwrap();
        let (ns, name) = (
            case["namespace"].as_str().unwrap(),
            case["name"].as_str().unwrap(),
        );
        let plaintext = case["plaintext"].as_str().unwrap();
        let expected = case["sealed"].as_str().unwrap();
        let mut rng = Replay {
            bytes: hex(case["stream_hex"].as_str().unwrap()),
            pos: 0,
        };
        let sealed = seal_to_base64(
            &mut rng,
            key.public(),
            &scope.label(ns, name),
            plaintext.as_bytes(),
        )
        .unwrap();
        assert_eq!(sealed, expected, "seal {} {scope}", case["key"]);
        assert_eq!(rng.pos, 64, "session key then OAEP seed: 64 bytes drawn");

        let ring = ring_of(vec![key]);
        let opened = ring
            .unseal_base64(expected, target(scope, ns, name), None)
            .unwrap();
        assert_eq!(opened.plaintext.expose(), plaintext.as_bytes());
    }
}

#[test]
fn blob_layout_is_prefix_rsa_then_gcm() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-4096-pkcs8.pem")).unwrap();
    let blob = seal_bytes(&mut os_rng(), key.public(), b"a/b", b"12345").unwrap();
    assert_eq!(&blob[..2], &[0x02, 0x00], "u16 BE 512");
    assert_eq!(blob.len(), 2 + 512 + 5 + 16);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    assert!(b64.starts_with("Ag"));
}

#[test]
fn round_trip_in_every_scope() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let public = key.public().clone();
    let ring = ring_of(vec![key]);
    for scope in SealingScope::ALL {
        let sealed = seal_to_base64(
            &mut os_rng(),
            &public,
            &scope.label("prod", "db"),
            b"s3cret",
        )
        .unwrap();
        let opened = ring
            .unseal_base64(&sealed, target(scope, "prod", "db"), None)
            .unwrap();
        assert_eq!(opened.plaintext.expose(), b"s3cret");
        assert_eq!(&opened.key, public.fingerprint());
    }
    // namespace-wide survives a rename, cluster-wide survives a move
    let ns_wide = seal_to_base64(&mut os_rng(), &public, b"prod", b"x").unwrap();
    assert!(
        ring.unseal_base64(
            &ns_wide,
            target(SealingScope::NamespaceWide, "prod", "other"),
            None
        )
        .is_ok()
    );
    let cluster = seal_to_base64(&mut os_rng(), &public, b"", b"x").unwrap();
    assert!(
        ring.unseal_base64(
            &cluster,
            target(SealingScope::ClusterWide, "elsewhere", "any"),
            None
        )
        .is_ok()
    );
}

fn sealed_strict(key: &PrivateSealingKey) -> Vec<u8> {
    seal_bytes(&mut os_rng(), key.public(), b"prod/db", b"payload").unwrap()
}

#[test]
fn tampered_tag_is_reported_as_tampering() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let mut blob = sealed_strict(&key);
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    let ring = ring_of(vec![key]);
    let err = ring
        .unseal(&blob, target(SealingScope::Strict, "prod", "db"), None)
        .unwrap_err();
    assert_eq!(err, UnsealError::Tampered);
    assert!(err.to_string().contains("modified after sealing"));
}

#[test]
fn truncated_blob_is_reported_as_truncated() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let blob = sealed_strict(&key);
    let ring = ring_of(vec![key]);
    let t = target(SealingScope::Strict, "prod", "db");
    for cut in [0, 1, 2, 100, 2 + 256 + 15] {
        let err = ring.unseal(&blob[..cut], t, None).unwrap_err();
        assert!(
            matches!(err, UnsealError::Truncated { len, .. } if len == cut),
            "{cut}: {err}"
        );
    }
}

#[test]
fn wrong_label_names_the_scope_it_was_sealed_with() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let blob = seal_bytes(&mut os_rng(), key.public(), b"prod", b"v").unwrap();
    let ring = ring_of(vec![key]);
    let err = ring
        .unseal(&blob, target(SealingScope::Strict, "prod", "db"), None)
        .unwrap_err();
    assert_eq!(
        err,
        UnsealError::ScopeMismatch {
            sealed: SealingScope::NamespaceWide,
            declared: SealingScope::Strict
        }
    );
    assert!(err.to_string().contains("--scope strict"), "{err}");
}

#[test]
fn wrong_name_or_namespace_under_strict_says_what_to_check() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let blob = sealed_strict(&key);
    let ring = ring_of(vec![key]);
    let err = ring
        .unseal(&blob, target(SealingScope::Strict, "staging", "db"), None)
        .unwrap_err();
    assert!(matches!(
        err,
        UnsealError::NoKeyCouldDecrypt { keys_tried: 1, .. }
    ));
    let msg = err.to_string();
    assert!(msg.starts_with("no key could decrypt secret"), "{msg}");
    assert!(msg.contains("another namespace or name"), "{msg}");
}

#[test]
fn wrong_key_is_reported_as_unknown_key() {
    let sealer = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let other = PrivateSealingKey::from_pem(&fixture("kat-key-4096-pkcs8.pem")).unwrap();
    let blob = sealed_strict(&sealer);
    let ring = ring_of(vec![other]);
    let err = ring
        .unseal(&blob, target(SealingScope::Strict, "prod", "db"), None)
        .unwrap_err();
    assert_eq!(err.category(), "unknown-key");
}

#[test]
fn bad_base64_is_reported_as_bad_base64() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let ring = ring_of(vec![key]);
    let t = target(SealingScope::Strict, "prod", "db");
    for bad in ["not base64!", "QUJD", "QUJDRA"] {
        let err = ring.unseal_base64(bad, t, None).unwrap_err();
        assert!(
            matches!(
                err,
                UnsealError::InvalidBase64(_) | UnsealError::Truncated { .. }
            ),
            "{bad}: {err}"
        );
    }
    assert!(matches!(
        ring.unseal_base64("QUJDRA", t, None).unwrap_err(),
        UnsealError::InvalidBase64(_)
    ));
}

#[test]
fn line_breaks_in_base64_are_tolerated_like_go() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let sealed = seal_to_base64(&mut os_rng(), key.public(), b"prod/db", b"v").unwrap();
    let wrapped: String = sealed
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let ring = ring_of(vec![key]);
    assert!(
        ring.unseal_base64(&wrapped, target(SealingScope::Strict, "prod", "db"), None)
            .is_ok()
    );
}

#[test]
fn empty_ring_says_no_keys() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let blob = sealed_strict(&key);
    let err = KeyRing::new()
        .unseal(&blob, target(SealingScope::Strict, "prod", "db"), None)
        .unwrap_err();
    assert_eq!(err, UnsealError::NoKeys);
}

#[test]
fn several_keys_any_order_and_hint_first() {
    let a = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let b = PrivateSealingKey::from_pem(&fixture("kat-key-4096-pkcs8.pem")).unwrap();
    let (fa, fb) = (a.fingerprint().clone(), b.fingerprint().clone());
    let blob_b = seal_bytes(&mut os_rng(), b.public(), b"prod/db", b"vb").unwrap();
    let ring = ring_of(vec![a, b]);
    let t = target(SealingScope::Strict, "prod", "db");
    for hint in [None, Some(&fa), Some(&fb)] {
        let opened = ring.unseal(&blob_b, t, hint).unwrap();
        assert_eq!(opened.key, fb);
        assert_eq!(opened.plaintext.expose(), b"vb");
    }
}

#[test]
fn fingerprint_is_ssh_sha256_format() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    // `ssh-keygen -lf` of the same public key
    assert_eq!(key.fingerprint(), &Fingerprint::of(key.public().rsa()));
    assert_eq!(
        key.fingerprint().as_str(),
        "SHA256:SY9+yBuHPL/W6duD3kH0iVJStgErdCr6hiN7FH3s/CU"
    );
}

#[test]
fn private_key_pem_round_trips_as_pkcs1() {
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-4096-pkcs8.pem")).unwrap();
    let pem = key.to_pkcs1_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let again = PrivateSealingKey::from_pem(&pem).unwrap();
    assert_eq!(again.fingerprint(), key.fingerprint());
    assert!(!format!("{key:?}").contains("PRIVATE"));
}

#[test]
fn generated_certificate_has_upstream_shape() {
    use x509_parser::prelude::*;
    let params = KeyGenParams {
        bits: 2048,
        ..KeyGenParams::default()
    };
    let (key, cert) = generate_key_and_cert(&params).unwrap();
    assert_eq!(cert.key.fingerprint(), key.fingerprint());
    let lifetime = cert.not_after - cert.not_before;
    assert_eq!(lifetime.num_hours(), 87_600);
    assert!(!cert.is_expired_at(chrono::Utc::now()));

    let (_, pem) = parse_x509_pem(cert.pem.as_bytes()).unwrap();
    let (_, x509) = X509Certificate::from_der(&pem.contents).unwrap();
    assert_eq!(x509.version(), X509Version::V3);
    assert!(x509.subject().as_raw().len() <= 2, "empty DN");
    assert_eq!(x509.subject().as_raw(), x509.issuer().as_raw());
    let ku = x509.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.encipher_only());
    assert!(!ku.value.key_agreement());
    let bc = x509.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert!(
        x509.extensions()
            .iter()
            .any(|e| e.oid == oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
    );
    // KeyUsage DER value exactly as Go writes it: BIT STRING 03 02 00 01
    let ku_ext = x509
        .extensions()
        .iter()
        .find(|e| e.oid == oid_registry::OID_X509_EXT_KEY_USAGE)
        .unwrap();
    assert_eq!(ku_ext.value, &[0x03, 0x02, 0x00, 0x01]);
    assert_eq!(
        x509.signature_algorithm.algorithm,
        oid_registry::OID_PKCS1_SHA256WITHRSA
    );
    // sealing with the parsed certificate opens with the generated key
    let again = SealingCertificate::from_pem(&cert.pem).unwrap();
    let sealed = seal_to_base64(&mut os_rng(), &again.key, b"", b"ok").unwrap();
    let ring = ring_of(vec![key]);
    assert!(
        ring.unseal_base64(&sealed, target(SealingScope::ClusterWide, "a", "b"), None)
            .is_ok()
    );
}

#[test]
fn certificate_parsing_rejects_garbage_and_non_rsa() {
    assert!(SealingCertificate::from_pem("nope").is_err());
    let key = PrivateSealingKey::from_pem(&fixture("kat-key-2048.pem")).unwrap();
    let pem = key.to_pkcs1_pem().unwrap();
    assert!(SealingCertificate::from_pem(&pem).is_err());
    let ec = fixture("ec-cert.pem");
    let err = SealingCertificate::from_pem(&ec).unwrap_err();
    assert!(err.to_string().contains("not an RSA key"), "{err}");
}
