//! A store's server CA: `caBundle` (PEM, base64 in the CRD) or `caProvider` (a Secret or
//! ConfigMap key read through the controller), with upstream's namespace rules.

use base64::Engine;
use strongroom_core::crd::external_secrets::{CaProvider, CaProviderType, StoreKind};

use crate::{CredentialResolver, ProviderError, StoreContext};

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// Decodes a `caBundle` (`field` names it in messages): base64 of PEM, as the CRD's Go
/// `[]byte` is; plain PEM is accepted too. Messages never quote the input.
pub fn decode_ca_bundle(bundle: &str, field: &str) -> Result<Vec<u8>, ProviderError> {
    let trimmed = bundle.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let compact: String = trimmed.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| invalid(format!("{field} is neither PEM nor base64 of PEM")))
}

impl StoreContext {
    /// Upstream's `caProvider` rules (`field` names it in messages): a namespace with a
    /// ClusterSecretStore and none with a SecretStore, and a name and key.
    pub fn check_ca_provider(&self, ca: &CaProvider, field: &str) -> Result<(), ProviderError> {
        match (self.kind, &ca.namespace) {
            (StoreKind::ClusterSecretStore, None) => {
                return Err(invalid(format!(
                    "{field}.namespace must not be empty with ClusterSecretStore"
                )));
            }
            (StoreKind::SecretStore, Some(_)) => {
                return Err(invalid(format!(
                    "{field}.namespace must be empty with SecretStore"
                )));
            }
            _ => {}
        }
        if ca.name.is_empty() || ca.key.as_deref().unwrap_or("").is_empty() {
            return Err(invalid(format!("{field} needs name and key")));
        }
        Ok(())
    }

    /// The CA PEM a store configures: `bundle` (`<prefix>caBundle`) when set, else the key
    /// `provider` (`<prefix>caProvider`) points at, else `None`.
    pub async fn ca_pem(
        &self,
        creds: &dyn CredentialResolver,
        bundle: Option<&str>,
        provider: Option<&CaProvider>,
        prefix: &str,
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        if let Some(bundle) = bundle.filter(|b| !b.is_empty()) {
            return decode_ca_bundle(bundle, &format!("{prefix}caBundle")).map(Some);
        }
        let Some(ca) = provider else {
            return Ok(None);
        };
        let field = format!("{prefix}caProvider");
        let namespace = match self.kind {
            StoreKind::ClusterSecretStore => ca.namespace.clone(),
            StoreKind::SecretStore => self.namespace.clone(),
        }
        .ok_or_else(|| invalid(format!("{field}.namespace is required")))?;
        let key = ca
            .key
            .as_deref()
            .ok_or_else(|| invalid(format!("{field}.key is required")))?;
        Ok(Some(match ca.type_ {
            CaProviderType::Secret => creds
                .secret_key(&namespace, &ca.name, key)
                .await?
                .expose()
                .to_vec(),
            CaProviderType::ConfigMap => creds
                .config_map_key(&namespace, &ca.name, key)
                .await?
                .into_bytes(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_pem_or_base64_of_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----";
        assert_eq!(
            decode_ca_bundle(pem, "caBundle").ok(),
            Some(pem.as_bytes().to_vec())
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(
            decode_ca_bundle(&b64, "caBundle").ok(),
            Some(pem.as_bytes().to_vec())
        );
        let e = decode_ca_bundle("!!! canary", "server.caBundle")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("server.caBundle") && !e.contains("canary"),
            "{e}"
        );
    }
}
