//! Where the provider sends its requests: Google's endpoints, or the ones named in the
//! controller's environment (`GCP_SECRETMANAGER_ENDPOINT`, `GCP_STS_ENDPOINT`,
//! `GCP_IAMCREDENTIALS_ENDPOINT`, `GCE_METADATA_HOST`, `GOOGLE_APPLICATION_CREDENTIALS`).
//! Plain HTTP is allowed only for loopback addresses.

use std::net::IpAddr;
use std::path::PathBuf;

use strongroom_provider_api::ProviderError;

/// Google's global Secret Manager endpoint.
pub const SECRET_MANAGER: &str = "https://secretmanager.googleapis.com";
/// Google's Security Token Service.
pub const STS: &str = "https://sts.googleapis.com";
/// Google's IAM Credentials API.
pub const IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com";
/// The GCE/GKE metadata server host.
pub const METADATA_HOST: &str = "metadata.google.internal";

/// The endpoints (and the Application Default Credentials file) a provider uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Secret Manager base URL for global and regional secrets; Google's when `None`
    /// (regional secrets then go to `secretmanager.{location}.rep.googleapis.com`).
    pub secret_manager: Option<String>,
    /// STS base URL; Google's when `None`.
    pub sts: Option<String>,
    /// IAM Credentials base URL; Google's when `None`.
    pub iam_credentials: Option<String>,
    /// Metadata server `host[:port]`; `metadata.google.internal` when `None`.
    pub metadata_host: Option<String>,
    /// The Application Default Credentials file (`GOOGLE_APPLICATION_CREDENTIALS`).
    pub adc_file: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Endpoints {
    /// The endpoints named by the process environment.
    pub fn from_env() -> Self {
        Self {
            secret_manager: env("GCP_SECRETMANAGER_ENDPOINT"),
            sts: env("GCP_STS_ENDPOINT"),
            iam_credentials: env("GCP_IAMCREDENTIALS_ENDPOINT"),
            metadata_host: env("GCE_METADATA_HOST"),
            adc_file: env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
        }
    }

    /// The Secret Manager base URL for `location` (global when `None`).
    pub fn secret_manager_base(&self, location: Option<&str>) -> Result<String, ProviderError> {
        match (&self.secret_manager, location) {
            (Some(url), _) => checked_base(url, "GCP_SECRETMANAGER_ENDPOINT"),
            (None, Some(l)) => Ok(format!("https://secretmanager.{l}.rep.googleapis.com")),
            (None, None) => Ok(SECRET_MANAGER.to_string()),
        }
    }

    /// The STS base URL.
    pub fn sts_base(&self) -> Result<String, ProviderError> {
        checked_base(self.sts.as_deref().unwrap_or(STS), "GCP_STS_ENDPOINT")
    }

    /// The IAM Credentials base URL.
    pub fn iam_base(&self) -> Result<String, ProviderError> {
        checked_base(
            self.iam_credentials.as_deref().unwrap_or(IAM_CREDENTIALS),
            "GCP_IAMCREDENTIALS_ENDPOINT",
        )
    }

    /// The metadata server's base URL (always plain HTTP, as Google's libraries use it).
    pub fn metadata_base(&self) -> String {
        format!(
            "http://{}",
            self.metadata_host.as_deref().unwrap_or(METADATA_HOST)
        )
    }
}

/// `url` without a trailing slash, if it is HTTPS or plain HTTP to a loopback address.
/// `what` names where it came from, for the error.
pub fn checked_base(url: &str, what: &str) -> Result<String, ProviderError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ProviderError::InvalidConfig(format!("{what} {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => {
            return Err(ProviderError::InvalidConfig(format!(
                "{what} {url:?} uses plain HTTP, which is allowed only for loopback addresses"
            )));
        }
        other => {
            return Err(ProviderError::InvalidConfig(format!(
                "{what} {url:?} has unsupported scheme {other:?}"
            )));
        }
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(checked_base("http://127.0.0.1:8080/", "x").unwrap() == "http://127.0.0.1:8080");
        assert!(checked_base("http://[::1]:1", "x").is_ok());
        assert!(checked_base("http://localhost:1", "x").is_ok());
        assert!(checked_base("https://sm.example.com", "x").is_ok());
        let e = checked_base("http://10.0.0.1:80", "GCP_SECRETMANAGER_ENDPOINT").unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(checked_base("ftp://127.0.0.1", "x").is_err());
    }

    #[test]
    fn regional_endpoints() {
        let google = Endpoints::default();
        assert_eq!(
            google.secret_manager_base(Some("europe-west1")).unwrap(),
            "https://secretmanager.europe-west1.rep.googleapis.com"
        );
        assert_eq!(google.secret_manager_base(None).unwrap(), SECRET_MANAGER);
        let local = Endpoints {
            secret_manager: Some("http://127.0.0.1:9".into()),
            ..Endpoints::default()
        };
        assert_eq!(
            local.secret_manager_base(Some("us-east1")).unwrap(),
            "http://127.0.0.1:9"
        );
    }
}
