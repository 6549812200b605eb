//! The conformance suite: behaviour every provider must show against its real backend (or, where
//! no server can run, a stand-in following the published API; the provider's test says so).
//!
//! The provider's test seeds its backend as [`Fixture`] describes, connects a client, and calls
//! [`run`]. Each check returns an error naming what broke, so a failing provider shows all its
//! gaps at once.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::{
    CallObserver, FindQuery, ProviderError, PushRef, RemoteRef, SecretBytes, SecretsClient,
    Validation,
};

/// A [`CallObserver`] for provider tests: keeps every `(provider, call, ok)` reported.
#[derive(Debug, Default)]
pub struct RecordedCalls(Mutex<Vec<(String, String, bool)>>);

impl CallObserver for RecordedCalls {
    fn observe(&self, provider: &str, call: &str, ok: bool) {
        if let Ok(mut calls) = self.0.lock() {
            calls.push((provider.into(), call.into(), ok));
        }
    }
}

impl RecordedCalls {
    fn with<T>(&self, f: impl FnOnce(&[(String, String, bool)]) -> T) -> T {
        match self.0.lock() {
            Ok(calls) => f(&calls),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Every call reported so far: `(provider, call, ok)`.
    pub fn all(&self) -> Vec<(String, String, bool)> {
        self.with(<[_]>::to_vec)
    }

    /// The `provider` labels seen.
    pub fn providers(&self) -> BTreeSet<String> {
        self.with(|c| c.iter().map(|(p, _, _)| p.clone()).collect())
    }

    /// The `call` labels seen.
    pub fn names(&self) -> BTreeSet<String> {
        self.with(|c| c.iter().map(|(_, n, _)| n.clone()).collect())
    }

    /// How often `call` was reported.
    pub fn count(&self, call: &str) -> usize {
        self.with(|c| c.iter().filter(|(_, n, _)| n == call).count())
    }

    /// The `(provider, call)` label pairs seen.
    pub fn labels(&self) -> BTreeSet<(String, String)> {
        self.with(|c| c.iter().map(|(p, n, _)| (p.clone(), n.clone())).collect())
    }

    /// Forgets the calls reported so far.
    pub fn clear(&self) {
        match self.0.lock() {
            Ok(mut calls) => calls.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }
}

/// What the backend holds before [`run`], and what the client may do.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A key holding `plain_value` (not JSON).
    pub plain_key: String,
    /// Its value.
    pub plain_value: String,
    /// A key holding the JSON object `{"user": "<json_user>", "port": 5432}`, or the provider's
    /// equivalent of a multi-field secret (e.g. a Kubernetes Secret with keys `user`, `port`).
    pub json_key: String,
    /// The `user` member of `json_key`.
    pub json_user: String,
    /// A key that does not exist.
    pub missing_key: String,
    /// A name regexp matching `plain_key` and `json_key` only, if the provider can search.
    pub find_regexp: Option<String>,
    /// A key the suite may create, overwrite and delete, if the provider can push.
    pub push_key: Option<String>,
}

/// One failed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What happened instead.
    pub detail: String,
}

fn text(v: &SecretBytes) -> String {
    String::from_utf8_lossy(v.expose()).into_owned()
}

/// Runs every check that applies. Returns the failures (empty when the provider conforms).
pub async fn run(client: &dyn SecretsClient, fx: &Fixture) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut fail = |check: &'static str, detail: String| failures.push(Failure { check, detail });

    match client.validate().await {
        Ok(Validation::Ready) | Ok(Validation::Unknown) => {}
        Err(e) => fail("validate", format!("validate failed: {e}")),
    }
    match client.get_secret(&RemoteRef::key(&fx.plain_key)).await {
        Ok(v) if text(&v) == fx.plain_value => {}
        Ok(v) => fail(
            "get_secret",
            format!("plain key returned {} bytes, not the seeded value", v.len()),
        ),
        Err(e) => fail("get_secret", e.to_string()),
    }
    let with_property = RemoteRef {
        property: Some("user".into()),
        ..RemoteRef::key(&fx.json_key)
    };
    match client.get_secret(&with_property).await {
        Ok(v) if text(&v) == fx.json_user => {}
        Ok(_) => fail(
            "get_secret_property",
            "property `user` returned another value".into(),
        ),
        Err(e) => fail("get_secret_property", e.to_string()),
    }
    let missing_property = RemoteRef {
        property: Some("no-such-property".into()),
        ..RemoteRef::key(&fx.json_key)
    };
    match client.get_secret(&missing_property).await {
        Err(e) if e.is_not_found() => {}
        other => fail(
            "missing_property",
            format!("expected NotFound, got {other:?}"),
        ),
    }
    match client.get_secret(&RemoteRef::key(&fx.missing_key)).await {
        Err(ProviderError::NotFound { key, .. })
            if key.contains(&fx.missing_key) || fx.missing_key.contains(&key) => {}
        other => fail(
            "missing_key",
            format!("expected NotFound naming the key, got {other:?}"),
        ),
    }
    match client.get_secret_map(&RemoteRef::key(&fx.json_key)).await {
        Ok(m)
            if m.get("user").map(text).as_deref() == Some(fx.json_user.as_str())
                && m.get("port").map(text).as_deref() == Some("5432") => {}
        Ok(m) => fail(
            "get_secret_map",
            format!("keys {:?}", m.keys().collect::<Vec<_>>()),
        ),
        Err(e) => fail("get_secret_map", e.to_string()),
    }
    if let Some(re) = &fx.find_regexp {
        let q = FindQuery {
            name_regexp: Some(re.clone()),
            ..FindQuery::default()
        };
        match client.get_all(&q).await {
            Ok(m) => {
                let names: Vec<_> = m.keys().cloned().collect();
                let has = |k: &str| {
                    names
                        .iter()
                        .any(|n| n == k || n.ends_with(k) || k.ends_with(n.as_str()))
                };
                if !has(&fx.plain_key) || !has(&fx.json_key) || names.len() != 2 {
                    fail("find", format!("found {names:?}"));
                }
            }
            Err(e) => fail("find", e.to_string()),
        }
    }
    if let Some(key) = &fx.push_key {
        let target = PushRef {
            remote_key: key.clone(),
            ..PushRef::default()
        };
        if let Err(e) = client.push(&SecretBytes::from("pushed-1"), &target).await {
            fail("push", e.to_string());
        }
        match client.exists(&target).await {
            Ok(true) => {}
            other => fail("exists", format!("after push: {other:?}")),
        }
        if let Err(e) = client.push(&SecretBytes::from("pushed-2"), &target).await {
            fail("push_overwrite", e.to_string());
        }
        match client.get_secret(&RemoteRef::key(key)).await {
            Ok(v) if text(&v).contains("pushed-2") => {}
            other => fail("push_read_back", format!("{other:?}")),
        }
        if let Err(e) = client.delete(&target).await {
            fail("delete", e.to_string());
        }
        match client.exists(&target).await {
            Ok(false) => {}
            other => fail("exists_after_delete", format!("{other:?}")),
        }
        if let Err(e) = client.delete(&target).await {
            fail(
                "delete_twice",
                format!("deleting a missing key must succeed: {e}"),
            );
        }
    }
    client.close().await;
    failures
}
