//! TLS for `/metrics` (`--metrics-secure`), as controller-runtime serves it: the certificate
//! chain and key from `--metrics-cert-dir` (files `tls.crt` and `tls.key` by default), or,
//! when no directory is given, a self-signed certificate made at start. A file name that is an
//! absolute path is read as given (upstream's chart passes absolute paths, which
//! controller-runtime would join under the directory).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The server configuration for the metrics endpoint.
pub fn server_config(
    cert_dir: &str,
    cert_name: &str,
    key_name: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = if cert_dir.is_empty() {
        self_signed()?
    } else {
        from_files(
            &Path::new(cert_dir).join(cert_name),
            &Path::new(cert_dir).join(key_name),
        )?
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("metrics TLS: the certificate and key do not fit: {e}"))?;
    Ok(Arc::new(config))
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn self_signed() -> anyhow::Result<Identity> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], key.into()))
}

fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "metrics TLS: cannot read certificates from {}: {e}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("metrics TLS: {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "metrics TLS: cannot read a private key from {}: {e}",
            key.display()
        )
    })?;
    Ok((chain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_files() {
        assert!(server_config("", "tls.crt", "tls.key").is_ok());
        let dir = std::env::temp_dir().join(format!("metrics-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["metrics".to_string()]).unwrap();
        std::fs::write(dir.join("c.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("k.pem"), made.signing_key.serialize_pem()).unwrap();
        let d = dir.to_str().unwrap();
        assert!(server_config(d, "c.pem", "k.pem").is_ok());
        // Upstream's chart passes absolute paths as the names: they are read as given.
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        let (c, k) = (c.to_str().unwrap(), k.to_str().unwrap());
        assert!(server_config("/etc/tls-elsewhere", c, k).is_ok());
        let missing = server_config(d, "nope.pem", "k.pem")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.pem"), "{missing}");
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let empty = server_config(d, "empty.pem", "k.pem")
            .unwrap_err()
            .to_string();
        assert!(empty.contains("no certificate"), "{empty}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
