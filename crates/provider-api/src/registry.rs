//! Which providers this build of the controller has: registered explicitly, one line per
//! cargo feature, in the binary.

use std::collections::BTreeMap;
use std::sync::Arc;

use strongroom_core::crd::external_secrets::{ProviderKind, SecretStoreProvider};

use crate::{Provider, ProviderError};

/// Provider blocks Strongroom implements, each with the cargo feature that compiles it in.
const KNOWN: [(&str, &str); 7] = [
    ("aws", "aws"),
    ("vault", "vault"),
    ("gcpsm", "gcp"),
    ("azurekv", "azure"),
    ("kubernetes", "kubernetes"),
    ("fake", "fake"),
    ("webhook", "webhook"),
];

/// The providers compiled into this binary, by provider-block key.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
}

/// Builds a [`ProviderRegistry`].
#[derive(Default)]
pub struct ProviderRegistryBuilder {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
}

impl ProviderRegistryBuilder {
    /// Adds a provider under its [`Provider::id`].
    pub fn with(mut self, provider: impl Provider) -> Self {
        self.providers.insert(provider.id(), Arc::new(provider));
        self
    }

    /// The registry.
    pub fn build(self) -> ProviderRegistry {
        ProviderRegistry {
            providers: self.providers,
        }
    }
}

impl ProviderRegistry {
    /// An empty builder.
    pub fn builder() -> ProviderRegistryBuilder {
        ProviderRegistryBuilder::default()
    }

    /// The ids of the registered providers.
    pub fn ids(&self) -> Vec<&'static str> {
        self.providers.keys().copied().collect()
    }

    /// The provider a store's provider block names. A block naming no provider, several, one
    /// Strongroom does not implement, or one not compiled in is an `InvalidConfig` error that
    /// says which and, for the last, which cargo feature to enable.
    pub fn get(&self, spec: &SecretStoreProvider) -> Result<Arc<dyn Provider>, ProviderError> {
        let kind = spec
            .kind()
            .map_err(|e| ProviderError::InvalidConfig(e.to_string()))?;
        let id = match &kind {
            ProviderKind::Aws => "aws",
            ProviderKind::Vault => "vault",
            ProviderKind::GcpSm => "gcpsm",
            ProviderKind::AzureKv => "azurekv",
            ProviderKind::Kubernetes => "kubernetes",
            ProviderKind::Fake => "fake",
            ProviderKind::Webhook => "webhook",
            ProviderKind::Unsupported(name) => {
                return Err(ProviderError::InvalidConfig(format!(
                    "provider {name:?} is not implemented by Strongroom (implemented: {})",
                    KNOWN.map(|(id, _)| id).join(", ")
                )));
            }
        };
        if let Some(p) = self.providers.get(id) {
            return Ok(p.clone());
        }
        let feature = KNOWN
            .iter()
            .find(|(known, _)| *known == id)
            .map_or(id, |(_, f)| *f);
        Err(ProviderError::InvalidConfig(format!(
            "provider {id:?} is not compiled into this controller: build it with cargo feature \
             `{feature}` (compiled in: {})",
            self.ids().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::AwsProvider;

    #[test]
    fn missing_providers_name_the_feature() {
        let registry = ProviderRegistry::builder().build();
        let spec = SecretStoreProvider {
            aws: Some(AwsProvider::default()),
            ..SecretStoreProvider::default()
        };
        let err = registry
            .get(&spec)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cargo feature `aws`"), "{err}");
        let mut other = SecretStoreProvider::default();
        other
            .other
            .insert("onepassword".into(), serde_json::json!({"vaults": {}}));
        let err = registry
            .get(&other)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("\"onepassword\" is not implemented"), "{err}");
        let none = registry
            .get(&SecretStoreProvider::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(none.contains("names no provider"), "{none}");
    }
}
