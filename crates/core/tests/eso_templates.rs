//! external-secrets' own template functions, run through `Engine::external_secrets()`:
//! upstream's documented examples (fixtures in `tests/fixtures/eso-templates/doc-examples.json`)
//! and the error and hostile-input cases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use strongroom_core::template::{Engine, TemplateError};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eso-templates")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

/// A fixture reference: `@file`, `b64:@file`, `bin:@file`, `bin-of-b64:@file`, or a literal.
fn value(spec: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(f) = spec.strip_prefix("bin-of-b64:@") {
        b64.decode(text(f).trim()).unwrap()
    } else if let Some(f) = spec.strip_prefix("b64:@") {
        b64.encode(read(f)).into_bytes()
    } else if let Some(f) = spec.strip_prefix("bin:@") {
        read(f)
    } else if let Some(f) = spec.strip_prefix('@') {
        read(f)
    } else {
        spec.as_bytes().to_vec()
    }
}

fn render(template: &str, data: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, TemplateError> {
    let data: BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Engine::external_secrets().render_data("out", template, &data)
}

fn render_text(template: &str, data: &[(&str, Vec<u8>)]) -> String {
    String::from_utf8(render(template, data).unwrap_or_else(|e| panic!("{template}: {e}"))).unwrap()
}

fn error(template: &str, data: &[(&str, Vec<u8>)]) -> String {
    match render(template, data) {
        Ok(out) => panic!(
            "{template}: expected an error, got {:?}",
            String::from_utf8_lossy(&out)
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn upstream_documented_examples_render_as_documented() {
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&read("doc-examples.json")).unwrap();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let data: Vec<(&str, Vec<u8>)> = case["data"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), value(v.as_str().unwrap())))
            .collect();
        let template = case["template"].as_str().unwrap();
        let expected = value(case["expected"].as_str().unwrap());
        match render(template, &data) {
            Ok(out) if out == expected => {}
            Ok(out) => failures.push(format!(
                "{name}:\n  template {template}\n  want {:?}\n  got  {:?}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&out)
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn functions_are_in_the_external_secrets_map_only() {
    let eso = Engine::external_secrets();
    let sprig = Engine::sprig();
    for f in [
        "filterPEM",
        "filterCertChain",
        "certSANs",
        "pkcs12key",
        "pkcs12keyPass",
        "pkcs12cert",
        "pkcs12certPass",
        "pemToPkcs12",
        "pemToPkcs12Pass",
        "fullPemToPkcs12",
        "fullPemToPkcs12Pass",
        "pemTruststoreToPKCS12",
        "pemTruststoreToPKCS12Pass",
        "jwkPublicKeyPem",
        "jwkPrivateKeyPem",
        "rsaDecrypt",
        "hexdec",
    ] {
        assert!(eso.has_func(f), "{f}");
        assert!(!sprig.has_func(f), "{f}");
    }
    assert!(eso.has_func("toString"));
}

#[test]
fn pkcs12_archives_written_here_read_back() {
    let chain = value("@chain-ordered.pem");
    let key = value("@leaf.key");
    let pkcs8 = text("leaf.pkcs8.key");
    let data = [("chain", chain.clone()), ("key", key)];
    // with and without a password, first certificate only
    assert_eq!(
        render_text(
            "{{ pemToPkcs12Pass .chain .key \"pw\" | b64dec | pkcs12keyPass \"pw\" }}",
            &data
        ),
        pkcs8
    );
    assert_eq!(
        render_text("{{ pemToPkcs12 .chain .key | b64dec | pkcs12cert }}", &data),
        text("leaf.crt")
    );
    assert_eq!(
        render_text(
            "{{ fullPemToPkcs12 .chain .key | b64dec | pkcs12cert }}",
            &data
        ),
        String::from_utf8(chain).unwrap()
    );
    // EC keys
    let ec = [("pfx", value("bin:@ec-nopass.pfx"))];
    assert_eq!(
        render_text("{{ .pfx | pkcs12key }}", &ec),
        text("ec-leaf.key")
    );
    assert_eq!(
        render_text("{{ .pfx | pkcs12cert }}", &ec),
        text("ec-leaf.crt")
    );
    // the trust store: OpenSSL reads it and finds the certificates
    let out = render_text("{{ pemTruststoreToPKCS12Pass .chain \"pw\" }}", &data);
    let der = base64::engine::general_purpose::STANDARD
        .decode(out)
        .unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(
        &der,
        "pw",
        p12_keystore::Pkcs12ImportPolicy::default(),
    )
    .unwrap();
    assert_eq!(store.entries_len(), 3);
    let empty = render_text("{{ pemTruststoreToPKCS12 \"\" }}", &data);
    assert!(!empty.is_empty());
}

#[test]
fn pkcs12_files_from_openssl_are_read() {
    let pfx = value("@leaf-pass.pfx");
    let data = [("pfx", pfx.clone())];
    assert_eq!(
        render_text("{{ .pfx | pkcs12keyPass \"s3cret-pfx\" }}", &data),
        text("leaf.pkcs8.key")
    );
    let legacy = [("pfx", value("@leaf-legacy.pfx"))];
    assert_eq!(
        render_text("{{ .pfx | pkcs12certPass \"legacy-pw\" }}", &legacy),
        text("leaf-intermediate.pem")
    );
}

#[test]
fn errors_are_one_line_and_never_show_secrets() {
    let password = "s3cret-pfx";
    let pfx = value("@leaf-pass.pfx");
    let key = value("@leaf.key");
    let data = [
        ("pfx", pfx),
        ("pw", b"wrong-pass-canary".to_vec()),
        ("key", key.clone()),
        ("jwk", value("@rsa-private.jwk")),
        ("pubjwk", value("@rsa-public.jwk")),
    ];
    let cases = [
        ("{{ .pfx | pkcs12keyPass .pw }}", "unable to decode pkcs12"),
        (
            "{{ .pfx | pkcs12certPass .pw }}",
            "unable to decode pkcs12 certificate",
        ),
        ("{{ .pfx | pkcs12key }}", "pkcs12key"),
        ("{{ .key | pkcs12key }}", "pkcs12key"),
        ("{{ .jwk | jwkPublicKeyPem }}", "jwkPublicKeyPem"),
        ("{{ .pubjwk | jwkPrivateKeyPem }}", "jwkPrivateKeyPem"),
        ("{{ \"{}\" | jwkPrivateKeyPem }}", "kty"),
        (
            "{{ \"{\\\"kty\\\":\\\"oct\\\",\\\"k\\\":\\\"AA\\\"}\" | jwkPublicKeyPem }}",
            "oct",
        ),
        (
            "{{ .key | rsaDecrypt \"RSA-OAEP\" \"SHA256\" .pw }}",
            "error decrypting data with RSA",
        ),
        (
            "{{ \"x\" | rsaDecrypt \"RSA-OAEP\" \"SHA256\" .pw }}",
            "failed to decode PEM block",
        ),
        (
            "{{ .key | rsaDecrypt \"RSA-PKCS1\" \"SHA256\" .pw }}",
            "not supported",
        ),
        ("{{ .pw | filterPEM \"CERTIFICATE\" }}", "found junk"),
        ("{{ .pw | certSANs }}", "failed to decode PEM block"),
        // a key is a SEQUENCE whose first item is no SEQUENCE: Go's x509 stops at the
        // to-be-signed part
        (
            "{{ .key | filterCertChain \"leaf\" }}",
            "x509: malformed tbs certificate",
        ),
        (
            "{{ \"\" | filterCertChain \"leaf\" }}",
            "no leaf certificate found",
        ),
        ("{{ pemToPkcs12 .pw .key }}", "pemToPkcs12"),
        ("{{ pemToPkcs12 .key .pw }}", "pemToPkcs12"),
        (
            "{{ pemTruststoreToPKCS12 .key }}",
            "x509: malformed tbs certificate",
        ),
        ("{{ hexdec \"zz\" }}", "hexdec"),
    ];
    let leaked = [
        password,
        "wrong-pass-canary",
        "MIIE",
        std::str::from_utf8(&key).unwrap().lines().nth(1).unwrap(),
    ];
    for (template, want) in cases {
        let msg = error(template, &data);
        assert!(msg.contains(want), "{template}: {msg}");
        assert!(!msg.contains('\n'), "{template}: {msg}");
        for secret in leaked {
            assert!(!msg.contains(secret), "{template} leaks: {msg}");
        }
    }
}

#[test]
fn filter_cert_chain_of_disjunct_certificates_fails() {
    let data = [(
        "certs",
        [value("@leaf.crt"), value("@ec-leaf.crt")].concat(),
    )];
    let msg = error("{{ .certs | filterCertChain \"leaf\" }}", &data);
    assert!(msg.contains("multiple leaf or disjunct"), "{msg}");
    // pkcs12cert keeps the stored order when no single chain exists
    let root_only = [("c", value("@root.crt"))];
    assert_eq!(
        render_text("{{ .c | filterCertChain \"leaf\" }}", &root_only),
        ""
    );
    assert_eq!(
        render_text("{{ .c | filterCertChain \"intermediate\" }}", &root_only),
        ""
    );
    assert_eq!(
        render_text("{{ .c | filterCertChain \"root\" }}", &root_only),
        text("root.crt")
    );
    assert_eq!(
        render_text("{{ .c | filterCertChain \"other\" }}", &root_only),
        ""
    );
}

#[test]
fn hostile_input_ends_in_a_value_or_an_error() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pfx = value("@leaf-nopass.pfx");
    let pem = value("@chain-shuffled.pem");
    let jwk = value("@rsa-private.jwk");
    let templates = [
        "{{ .x | pkcs12key }}",
        "{{ .x | pkcs12cert }}",
        "{{ .x | filterPEM \"CERTIFICATE\" }}",
        "{{ .x | filterCertChain \"root\" }}",
        "{{ .x | certSANs }}",
        "{{ .x | jwkPrivateKeyPem }}",
        "{{ .x | jwkPublicKeyPem }}",
        "{{ fullPemToPkcs12 .x .x }}",
        "{{ pemTruststoreToPKCS12 .x }}",
        "{{ .x | rsaDecrypt \"RSA-OAEP\" \"SHA1\" .x }}",
    ];
    for round in 0..60 {
        for source in [&pfx, &pem, &jwk] {
            let mut bytes = source.clone();
            // flip, cut or duplicate a few bytes
            for _ in 0..(1 + round % 5) {
                let at = (next() as usize) % bytes.len().max(1);
                match next() % 3 {
                    0 => bytes[at] ^= (next() % 255 + 1) as u8,
                    1 => bytes.truncate(at.max(1)),
                    _ => {
                        let piece = bytes[at..].to_vec();
                        bytes.extend_from_slice(&piece[..piece.len().min(64)]);
                    }
                }
            }
            for t in templates {
                if let Err(e) = render(t, &[("x", bytes.clone())]) {
                    assert!(!e.to_string().contains('\n'), "{t}: {e}");
                }
            }
        }
    }
    // nested and huge inputs
    let deep = format!("{}1{}", "{\"kty\":".repeat(2000), "}".repeat(2000));
    assert!(render("{{ .x | jwkPublicKeyPem }}", &[("x", deep.into_bytes())]).is_err());
    // many blocks that never end, or end with the wrong type: linear, not quadratic (the
    // render deadline is 5 s)
    let started = std::time::Instant::now();
    let many = "-----BEGIN X-----\n".repeat(20_000);
    let msg = error("{{ .x | filterPEM \"X\" }}", &[("x", many.into_bytes())]);
    assert!(msg.contains("found junk"), "{msg}");
    let wrong_end = format!(
        "{}-----END Y-----\n",
        "-----BEGIN X-----\nAAAA\n".repeat(20_000)
    );
    let msg = error(
        "{{ .x | filterPEM \"X\" }}",
        &[("x", wrong_end.into_bytes())],
    );
    assert!(msg.contains("found junk"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}
