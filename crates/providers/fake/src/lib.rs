//! The `fake` provider: serves the values written in the store's `spec.provider.fake.data`, as
//! upstream does, and keeps pushed values in memory for the client's lifetime. Every read
//! counts as one `GetSecret` call, so tests and the benchmark can count provider calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strongroom_core::crd::external_secrets::FakeProvider as FakeSpec;
use strongroom_provider_api::{
    CallObserver, Capabilities, FindQuery, Provider, ProviderEnv, ProviderError, PushRef,
    RemoteRef, SecretBytes, SecretMap, SecretsClient, StoreContext, Validation, json_property,
};

/// The provider-block key and metric name.
const ID: &str = "fake";
const METRIC_NAME: &str = "Fake";

/// The fake provider factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeProvider;

fn spec(store: &StoreContext) -> Result<&FakeSpec, ProviderError> {
    store
        .provider
        .fake
        .as_ref()
        .ok_or_else(|| ProviderError::InvalidConfig("spec.provider.fake is missing".into()))
}

#[async_trait]
impl Provider for FakeProvider {
    fn id(&self) -> &'static str {
        ID
    }

    fn metric_name(&self) -> &'static str {
        METRIC_NAME
    }

    fn capabilities(&self, _store: &StoreContext) -> Capabilities {
        Capabilities::ReadWrite
    }

    fn validate_store(&self, store: &StoreContext) -> Result<Vec<String>, ProviderError> {
        let spec = spec(store)?;
        for (i, d) in spec.data.iter().enumerate() {
            if d.key.is_empty() {
                return Err(ProviderError::InvalidConfig(format!(
                    "spec.provider.fake.data[{i}].key must not be empty"
                )));
            }
        }
        Ok(Vec::new())
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        self.validate_store(store)?;
        let mut values = BTreeMap::new();
        for d in &spec(store)?.data {
            let value = match (&d.value, &d.value_map) {
                (Some(v), _) => v.clone(),
                (None, Some(map)) => serde_json::to_string(map)
                    .map_err(|e| ProviderError::InvalidConfig(e.to_string()))?,
                (None, None) => String::new(),
            };
            values.insert(
                (d.key.clone(), d.version.clone().unwrap_or_default()),
                SecretBytes::from(value.as_str()),
            );
        }
        Ok(Box::new(FakeClient {
            values: Mutex::new(values),
            calls: env.calls,
            validation: spec(store)?.validation_result.unwrap_or(0),
        }))
    }
}

/// A session with a fake store: its values keyed by (key, version).
struct FakeClient {
    values: Mutex<BTreeMap<(String, String), SecretBytes>>,
    calls: Arc<dyn CallObserver>,
    /// `validationResult`: 0 ready, 1 unknown, 2 (or anything else) error, as upstream's
    /// `ValidationResult` constants.
    validation: i32,
}

impl FakeClient {
    fn lookup(&self, key: &str, version: &str) -> Option<SecretBytes> {
        self.values
            .lock()
            .ok()
            .and_then(|v| v.get(&(key.to_string(), version.to_string())).cloned())
    }
}

#[async_trait]
impl SecretsClient for FakeClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let found = self.lookup(&remote.key, remote.version.as_deref().unwrap_or_default());
        self.calls
            .observe(METRIC_NAME, "GetSecret", found.is_some());
        let value = found.ok_or_else(|| ProviderError::not_found(&remote.key))?;
        match &remote.property {
            Some(p) => json_property(&remote.key, value.expose(), p),
            None => Ok(value),
        }
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let filter = query.name_filter()?;
        self.calls.observe(METRIC_NAME, "ListSecrets", true);
        let values = self
            .values
            .lock()
            .map_err(|_| ProviderError::Unavailable("fake store lock poisoned".into()))?;
        Ok(values
            .iter()
            .filter(|((key, version), _)| {
                version.is_empty() && filter.as_ref().is_none_or(|f| f.is_match(key))
            })
            .filter(|((key, _), _)| query.path.as_deref().is_none_or(|p| key.starts_with(p)))
            .map(|((key, _), v)| (key.clone(), v.clone()))
            .collect())
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        self.calls.observe(METRIC_NAME, "PushSecret", true);
        let mut values = self
            .values
            .lock()
            .map_err(|_| ProviderError::Unavailable("fake store lock poisoned".into()))?;
        let slot = (target.remote_key.clone(), String::new());
        let stored = match &target.property {
            None => value.clone(),
            Some(p) => {
                let mut object = values
                    .get(&slot)
                    .and_then(|v| serde_json::from_slice::<serde_json::Map<_, _>>(v.expose()).ok())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(value.expose()).into_owned();
                object.insert(p.clone(), serde_json::Value::String(text));
                SecretBytes::new(serde_json::Value::Object(object).to_string().into_bytes())
            }
        };
        values.insert(slot, stored);
        Ok(())
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        self.calls.observe(METRIC_NAME, "DeleteSecret", true);
        if let Ok(mut values) = self.values.lock() {
            values.remove(&(target.remote_key.clone(), String::new()));
        }
        Ok(())
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        Ok(self.lookup(&target.remote_key, "").is_some())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        match self.validation {
            0 => Ok(Validation::Ready),
            1 => Ok(Validation::Unknown),
            _ => Err(ProviderError::InvalidConfig("unable to validate".into())),
        }
    }
}
