//! Reading everything an ExternalSecret asks for: `dataFrom[]` in order (later keys win), then
//! `data[]`, each from its own store or the spec's, through [`Stores`].

use std::collections::{BTreeMap, HashMap};

use strongroom_core::crd::external_secrets::{
    ExternalSecretDataFromRemoteRef, ExternalSecretDataRemoteRef, ExternalSecretSpec,
    MetadataPolicy, SecretStoreRef, StoreKind,
};
use strongroom_core::template::Engine;
use strongroom_provider_api::{FindQuery, ProviderError, RemoteRef, SecretBytes, SecretMap};

use crate::error::Error;
use crate::keys::{check_null_bytes, convert_key, decode, rewrite, select, valid_key};
use crate::stores::{ResolvedStore, Stores};

/// What was read.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Secret key → value.
    pub data: BTreeMap<String, SecretBytes>,
    /// Entries whose remote key was missing and skipped (deletionPolicy Delete or Merge).
    pub missing: Vec<String>,
    /// Generator states to record, by `dataFrom` entry (`spec.dataFrom[i]`).
    pub states: Vec<(String, crate::generators::GeneratedState)>,
}

/// How a fetch ended.
#[derive(Debug)]
pub enum Outcome {
    /// Everything read (or skipped as missing).
    Fetched(Fetched),
    /// A store belongs to another controller class: this ExternalSecret is not ours.
    OtherClass,
}

/// The keys of one `dataFrom` entry that its `select[]` keeps.
fn select_keys(
    map: SecretMap,
    from: &ExternalSecretDataFromRemoteRef,
    at: &str,
) -> Result<SecretMap, Error> {
    match from.select.as_deref() {
        None | Some([]) => Ok(map),
        Some(selects) => select(map, selects).map_err(|message| Error::Value {
            at: at.to_string(),
            message,
        }),
    }
}

fn remote_ref(r: &ExternalSecretDataRemoteRef) -> RemoteRef {
    RemoteRef {
        key: r.key.clone(),
        property: r.property.clone().filter(|p| !p.is_empty()),
        version: r.version.clone().filter(|v| !v.is_empty()),
        fetch_metadata: r.metadata_policy == Some(MetadataPolicy::Fetch),
    }
}

struct StoreLookup<'a> {
    stores: &'a Stores,
    namespace: &'a str,
    resolved: HashMap<(StoreKind, String), Option<ResolvedStore>>,
}

impl StoreLookup<'_> {
    async fn get(&mut self, store_ref: &SecretStoreRef) -> Result<Option<ResolvedStore>, Error> {
        let key = (
            store_ref.kind_or_default(),
            store_ref.name.clone().unwrap_or_default(),
        );
        if let Some(found) = self.resolved.get(&key) {
            return Ok(found.clone());
        }
        let found = self.stores.resolve(store_ref, self.namespace).await?;
        self.resolved.insert(key, found.clone());
        Ok(found)
    }
}

/// Reads what `spec` asks for, for the ExternalSecret `owner`; `engine` renders
/// `rewrite[].transform` templates. With `tolerate_missing` (deletionPolicy Delete or Merge) a
/// missing remote key is skipped instead of failing. Reads up to `max_age` old made for other
/// ExternalSecrets are used.
pub async fn fetch(
    spec: &ExternalSecretSpec,
    namespace: &str,
    owner: &str,
    stores: &Stores,
    engine: &Engine,
    tolerate_missing: bool,
    max_age: std::time::Duration,
) -> Result<Outcome, Error> {
    let mut out = Fetched::default();
    let result = fetch_into(
        &mut out,
        spec,
        (namespace, owner),
        stores,
        engine,
        tolerate_missing,
        max_age,
    )
    .await;
    if let Ok(true) = result {
        return Ok(Outcome::Fetched(out));
    }
    // what was generated will not be written anywhere: its leases go now
    for (at, state) in &out.states {
        if let Err(e) =
            crate::generators::cleanup(stores, namespace, &state.resource, &state.state).await
        {
            tracing::warn!(object = %format!("{namespace}/{owner}"), entry = %at, error = %e, "could not clean up an unused generation");
        }
    }
    result.map(|_| Outcome::OtherClass)
}

/// [`fetch`] into `out`; `false` when a store belongs to another controller class.
async fn fetch_into(
    out: &mut Fetched,
    spec: &ExternalSecretSpec,
    (namespace, owner): (&str, &str),
    stores: &Stores,
    engine: &Engine,
    tolerate_missing: bool,
    max_age: std::time::Duration,
) -> Result<bool, Error> {
    let mut lookup = StoreLookup {
        stores,
        namespace,
        resolved: HashMap::new(),
    };
    let default_store = spec.secret_store_ref.clone();
    let missing_or = |at: String, e: ProviderError, out: &mut Fetched| {
        // only a missing key is tolerated: a missing property (a typo, a changed JSON shape)
        // is an error, never a reason to delete or empty the target
        let missing_key = matches!(&e, ProviderError::NotFound { detail, .. } if detail.is_empty());
        if tolerate_missing && missing_key {
            out.missing.push(at);
            Ok(())
        } else {
            Err(Error::Fetch { at, source: e })
        }
    };
    for (i, from) in spec.data_from.iter().flatten().enumerate() {
        let at = format!("spec.dataFrom[{i}]");
        if let Some(generator) = from
            .source_ref
            .as_ref()
            .and_then(|s| s.generator_ref.as_ref())
        {
            let mut state = None;
            let generated = crate::generators::generate(
                stores,
                namespace,
                &format!("{owner}/{at}"),
                generator,
                &mut state,
            )
            .await;
            if let Some(state) = state {
                out.states.push((at.clone(), state));
            }
            let map = generated.map_err(|message| Error::Value {
                at: format!("{at}.sourceRef.generatorRef"),
                message,
            })?;
            let rewrites = from.rewrite.clone().unwrap_or_default();
            let map = if rewrites.is_empty() {
                map
            } else {
                rewrite(map, &rewrites, engine).map_err(|message| Error::Value {
                    at: at.clone(),
                    message,
                })?
            };
            let map = select_keys(map, from, &at)?;
            out.data.extend(map);
            continue;
        }
        let store_ref = from
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.clone())
            .or_else(|| default_store.clone())
            .ok_or_else(|| {
                Error::InvalidSpec(format!("{at}: no secretStoreRef and no sourceRef"))
            })?;
        let Some(store) = lookup.get(&store_ref).await? else {
            return Ok(false);
        };
        let (read, conversion, decoding, null_policy) = match (&from.extract, &from.find) {
            (Some(extract), None) => (
                stores.get_map(&store, max_age, &remote_ref(extract)).await,
                extract.conversion_strategy.unwrap_or_default(),
                extract.decoding_strategy.unwrap_or_default(),
                extract.null_byte_policy,
            ),
            (None, Some(find)) => {
                let query = FindQuery {
                    path: find.path.clone(),
                    name_regexp: find.name.as_ref().and_then(|n| n.regexp.clone()),
                    tags: find.tags.clone().unwrap_or_default(),
                };
                (
                    stores.find(&store, max_age, &query).await,
                    find.conversion_strategy.unwrap_or_default(),
                    find.decoding_strategy.unwrap_or_default(),
                    find.null_byte_policy,
                )
            }
            _ => {
                return Err(Error::InvalidSpec(format!(
                    "{at} must set exactly one of extract, find and sourceRef.generatorRef"
                )));
            }
        };
        let map = match read {
            Ok(m) => m,
            Err(e) => {
                missing_or(at, e, out)?;
                continue;
            }
        };
        let rewrites = from.rewrite.clone().unwrap_or_default();
        let map: SecretMap = if rewrites.is_empty() {
            select_keys(map, from, &at)?
                .into_iter()
                .map(|(k, v)| (convert_key(&k, conversion), v))
                .collect()
        } else {
            let map = rewrite(map, &rewrites, engine).map_err(|message| Error::Value {
                at: at.clone(),
                message,
            })?;
            select_keys(map, from, &at)?
        };
        for (key, value) in map {
            if key.is_empty() {
                continue;
            }
            if !valid_key(&key) {
                return Err(Error::Value {
                    at,
                    message: format!(
                        "key {key:?} is not a valid Secret key (letters, digits, '-', '.', '_'; at most 253)"
                    ),
                });
            }
            let value = decode(&key, value, decoding).map_err(|message| Error::Value {
                at: at.clone(),
                message,
            })?;
            check_null_bytes(&key, &value, null_policy).map_err(|message| Error::Value {
                at: at.clone(),
                message,
            })?;
            out.data.insert(key, value);
        }
    }
    for (i, entry) in spec.data.iter().flatten().enumerate() {
        let at = format!("spec.data[{i}] (key: {})", entry.secret_key);
        let store_ref = entry
            .source_ref
            .as_ref()
            .and_then(|s| s.store_ref.clone())
            .or_else(|| default_store.clone())
            .ok_or_else(|| {
                Error::InvalidSpec(format!("{at}: no secretStoreRef and no sourceRef"))
            })?;
        let Some(store) = lookup.get(&store_ref).await? else {
            return Ok(false);
        };
        let value = match stores
            .get(&store, max_age, &remote_ref(&entry.remote_ref))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                missing_or(at, e, out)?;
                continue;
            }
        };
        let decoding = entry.remote_ref.decoding_strategy.unwrap_or_default();
        let value = decode(&entry.secret_key, value, decoding).map_err(|message| Error::Value {
            at: at.clone(),
            message,
        })?;
        check_null_bytes(&entry.secret_key, &value, entry.remote_ref.null_byte_policy).map_err(
            |message| Error::Value {
                at: at.clone(),
                message,
            },
        )?;
        out.data.insert(entry.secret_key.clone(), value);
    }
    Ok(true)
}
