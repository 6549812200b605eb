//! Loading the sealing certificate from a file or URL, refusing expired ones by default.

use chrono::Utc;
use strongroom_core::sealing::SealingCertificate;

use crate::error::{Error, Result};

/// Reads the PEM text of `--cert`: a path, `file://` path or `http(s)://` URL.
pub fn read_pem(source: &str) -> Result<String> {
    let fail = |reason: String| Error::Certificate {
        source_name: source.to_string(),
        reason,
    };
    if source.starts_with("http://") || source.starts_with("https://") {
        let mut response = ureq::get(source)
            .header("Accept", "application/x-pem-file, */*")
            .call()
            .map_err(|e| fail(format!("cannot fetch: {e}")))?;
        return response
            .body_mut()
            .read_to_string()
            .map_err(|e| fail(format!("cannot read the response: {e}")));
    }
    let path = source.strip_prefix("file://").unwrap_or(source);
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// Loads and checks the certificate to seal with.
pub fn load(source: &str, allow_expired: bool) -> Result<SealingCertificate> {
    check(&read_pem(source)?, source, allow_expired)
}

/// Parses PEM and refuses an expired certificate unless allowed.
pub fn check(pem: &str, source: &str, allow_expired: bool) -> Result<SealingCertificate> {
    let cert = SealingCertificate::from_pem(pem).map_err(|e| Error::Certificate {
        source_name: source.to_string(),
        reason: e.to_string(),
    })?;
    if cert.is_expired_at(Utc::now()) {
        let expired = cert.not_after.format("%B %-d, %Y").to_string();
        if !allow_expired {
            return Err(Error::ExpiredCertificate { expired });
        }
        eprintln!(
            "warning: sealing with a certificate that expired on {expired} (--allow-expired-cert)"
        );
    }
    Ok(cert)
}
