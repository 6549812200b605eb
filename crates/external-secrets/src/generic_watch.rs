//! Generic targets' kinds: resolving `spec.target.manifest` to an API resource by discovery
//! (cached per kind), and one metadata-only watch per kind in use, of the objects carrying the
//! managed label, so that an edited or deleted target is repaired at once. A kind's watch ends
//! when the last ExternalSecret writing it moves to another kind or target, or goes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::core::PartialObjectMeta;
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use strongroom_controller_kit::shutdown::CancellationToken;
use strongroom_controller_kit::watch::backed_off_watch;
use strongroom_core::crd::external_secrets::{MANAGED_LABEL, ManifestReference};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::error::Error;

/// A touched target object: namespace and name.
pub type Touched = (String, String);

/// An ExternalSecret: namespace and name.
pub type User = (String, String);

/// The watches of generic kinds and the ExternalSecrets using each.
#[derive(Default)]
struct Watches {
    /// Kind (`<apiVersion>/<kind>`) → the watch's stop token and the ExternalSecrets using it.
    by_kind: HashMap<String, (CancellationToken, HashSet<User>)>,
    /// ExternalSecret → the kind it last wrote.
    kind_of: HashMap<User, String>,
}

impl Watches {
    /// Records that `user` writes `kind` (and no longer the kind it wrote before). Returns the
    /// stop token of the watch to start when none runs for `kind`: a child of `parent`.
    fn register(
        &mut self,
        user: User,
        kind: &str,
        parent: &CancellationToken,
    ) -> Option<CancellationToken> {
        if self.kind_of.get(&user).map(String::as_str) != Some(kind) {
            self.release(&user);
            self.kind_of.insert(user.clone(), kind.to_string());
        }
        let running = self.by_kind.contains_key(kind);
        let (token, users) = self
            .by_kind
            .entry(kind.to_string())
            .or_insert_with(|| (parent.child_token(), HashSet::new()));
        users.insert(user);
        (!running).then(|| token.clone())
    }

    /// Takes `user` off its kind; the kind's watch stops when nobody else uses it.
    fn release(&mut self, user: &User) {
        let Some(kind) = self.kind_of.remove(user) else {
            return;
        };
        if let Some((stop, users)) = self.by_kind.get_mut(&kind) {
            users.remove(user);
            if users.is_empty() {
                stop.cancel();
                self.by_kind.remove(&kind);
                tracing::info!(%kind, "no ExternalSecret writes this kind any more: its watch stops");
            }
        }
    }
}

/// What generic targets share for one leadership term.
pub struct GenericTargets {
    /// `--unsafe-allow-generic-targets`.
    pub allowed: bool,
    namespace: Option<String>,
    resolved: Mutex<HashMap<(String, String), ApiResource>>,
    watches: Mutex<Watches>,
    touched: UnboundedSender<Touched>,
}

impl GenericTargets {
    /// The shared state and the stream of touched targets the ExternalSecret controller maps
    /// to the ExternalSecrets writing them. `namespace` scopes the watches (`--namespace`).
    pub fn new(allowed: bool, namespace: Option<String>) -> (Self, UnboundedReceiver<Touched>) {
        let (tx, rx) = unbounded_channel();
        (
            Self {
                allowed,
                namespace,
                resolved: Mutex::default(),
                watches: Mutex::default(),
                touched: tx,
            },
            rx,
        )
    }

    /// The API resource of a manifest's kind, by discovery (answers are kept: a served kind
    /// does not move). An unknown or cluster-scoped kind is a [`Error::Target`].
    pub async fn resolve(
        &self,
        client: &Client,
        manifest: &ManifestReference,
    ) -> Result<ApiResource, Error> {
        let key = (manifest.api_version.clone(), manifest.kind.clone());
        if let Some(ar) = self.lock_resolved().get(&key) {
            return Ok(ar.clone());
        }
        let (group, version) = match manifest.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", manifest.api_version.as_str()),
        };
        let what = format!(
            "spec.target.manifest {} {}",
            manifest.api_version, manifest.kind
        );
        if version.is_empty() || manifest.kind.is_empty() || version.contains('/') {
            return Err(Error::Target(format!(
                "{what}: apiVersion must be <group>/<version> (or v1) and kind must be set"
            )));
        }
        let gvk = GroupVersionKind::gvk(group, version, &manifest.kind);
        let (ar, caps) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => {
                return Err(Error::Target(format!(
                    "{what}: the API server serves no such kind (is its CRD installed?)"
                )));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(Error::Target(format!(
                    "{what}: the API server serves no such group/version (is its CRD installed?)"
                )));
            }
            Err(e) => return Err(Error::kube("discover the target kind")(e)),
        };
        if caps.scope != Scope::Namespaced {
            return Err(Error::Target(format!(
                "{what}: the kind is cluster-scoped; only namespaced kinds can be targets"
            )));
        }
        self.lock_resolved().insert(key, ar.clone());
        Ok(ar)
    }

    /// Records that `user` writes a target of kind `ar` (and no longer the kind it wrote
    /// before), and starts the watch of `ar`'s managed objects unless it runs already; it ends
    /// with `stop`, or when no ExternalSecret writes the kind any more.
    pub fn watch(&self, client: &Client, ar: &ApiResource, stop: &CancellationToken, user: User) {
        let key = format!("{}/{}", ar.api_version, ar.kind);
        let Some(stop) = self.lock_watches().register(user, &key, stop) else {
            return;
        };
        let api: Api<PartialObjectMeta<DynamicObject>> = match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        };
        let config = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
        let touched = self.touched.clone();
        tokio::spawn(async move {
            tracing::info!(kind = %key, "watching generic targets");
            let stream = backed_off_watch(api, config).touched_objects();
            futures::pin_mut!(stream);
            let mut failing = false;
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    next = stream.next() => next,
                };
                match next {
                    None => break,
                    Some(Ok(obj)) => {
                        failing = false;
                        let target = (obj.namespace().unwrap_or_default(), obj.name_any());
                        if touched.send(target).is_err() {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        // without list/watch on the kind, targets are still written and
                        // checked on every refresh; only the immediate repair is missing
                        if !failing {
                            tracing::warn!(kind = %key, error = %e,
                                "cannot watch generic targets (grant list and watch on the kind for immediate repair)");
                        }
                        failing = true;
                    }
                }
            }
        });
    }

    /// Takes the ExternalSecret `user` off the generic kind it wrote (it was deleted, or its
    /// target is a Secret now); the kind's watch stops when nobody else writes it.
    pub fn release(&self, user: &User) {
        self.lock_watches().release(user);
    }

    fn lock_watches(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_resolved(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ApiResource>> {
        self.resolved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        ("ns".to_string(), name.to_string())
    }

    #[test]
    fn a_kind_is_watched_while_an_external_secret_writes_it() {
        let parent = CancellationToken::new();
        let mut watches = Watches::default();
        let maps = watches
            .register(user("a"), "v1/ConfigMap", &parent)
            .expect("the first user starts the watch");
        assert!(
            watches
                .register(user("b"), "v1/ConfigMap", &parent)
                .is_none()
        );
        assert!(
            watches
                .register(user("a"), "v1/ConfigMap", &parent)
                .is_none()
        );
        // one user gone, the other still writes the kind
        watches.release(&user("a"));
        assert!(!maps.is_cancelled());
        // the last user moves to another kind: the first kind's watch stops
        let apps = watches
            .register(user("b"), "example.com/v1/App", &parent)
            .expect("a new kind starts its watch");
        assert!(maps.is_cancelled());
        assert!(!apps.is_cancelled());
        // the kind comes back into use: a new watch
        assert!(
            watches
                .register(user("a"), "v1/ConfigMap", &parent)
                .is_some()
        );
        // releasing an unknown user changes nothing; the parent stops every watch
        watches.release(&user("nobody"));
        parent.cancel();
        assert!(apps.is_cancelled());
    }
}
