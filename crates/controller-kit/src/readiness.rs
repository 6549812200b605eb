//! Readiness that means "can serve", never "leads": each part of a controller (keys loaded, an
//! HTTP API listening, each watch's first list) registers a component and reports when it is
//! ready; `/readyz` answers 200 once every registered component is.
//!
//! A follower registers only what it runs (say, the keys and the API it serves), so it is ready
//! while another replica leads, and a rolling upgrade can finish.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The readiness of every registered component. Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<String, bool>>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// One registered component; report with [`Component::ready`].
#[derive(Debug, Clone)]
pub struct Component {
    name: String,
    readiness: Readiness,
}

impl Readiness {
    /// Registers a component, not ready yet. Registering a name again resets it.
    pub fn component(&self, name: &str) -> Component {
        self.lock().insert(name.to_string(), false);
        Component {
            name: name.to_string(),
            readiness: self.clone(),
        }
    }

    /// True when at least one component is registered, all are ready, and the process is not
    /// shutting down.
    pub fn is_ready(&self) -> bool {
        let components = self.lock();
        !self.is_stopping() && !components.is_empty() && components.values().all(|r| *r)
    }

    /// Marks the process as shutting down: `/readyz` answers 503 from now on, so the Service
    /// stops sending requests while the servers still answer the ones in flight.
    pub fn set_stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Readiness::set_stopping`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the process as shutting down as soon as `shutdown` is cancelled.
    pub fn stop_on(&self, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            me.set_stopping();
        });
    }

    /// The components not ready yet, for `/readyz` and logs.
    pub fn waiting_for(&self) -> Vec<String> {
        if self.is_stopping() {
            return vec!["shutdown (the process is stopping)".to_string()];
        }
        self.lock()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.components.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Component {
    /// Marks the component ready.
    pub fn ready(&self) {
        self.readiness.lock().insert(self.name.clone(), true);
    }

    /// Marks the component not ready (say, the keys are gone).
    pub fn not_ready(&self) {
        self.readiness.lock().insert(self.name.clone(), false);
    }

    /// Removes the component, for parts that stop (a leader's watches when it steps down).
    pub fn remove(&self) {
        self.readiness.lock().remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let r = Readiness::default();
        assert!(!r.is_ready(), "nothing registered is not ready");
        let keys = r.component("keys");
        let api = r.component("http-api");
        assert_eq!(r.waiting_for(), ["http-api", "keys"]);
        keys.ready();
        assert!(!r.is_ready());
        api.ready();
        assert!(r.is_ready());
        keys.not_ready();
        assert_eq!(r.waiting_for(), ["keys"]);
        keys.remove();
        assert!(r.is_ready());
        r.set_stopping();
        assert!(!r.is_ready(), "not ready while shutting down");
        assert_eq!(r.waiting_for().len(), 1);
    }
}
