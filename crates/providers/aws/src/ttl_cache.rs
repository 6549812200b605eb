//! A small map whose entries expire after a fixed time and whose size is bounded (the oldest
//! entry goes first): the Certificate Manager client's remote-key → ARN and export caches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries live `ttl` and at most `capacity` are kept.
#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (Instant, V)>) -> T) -> T {
        match self.entries.lock() {
            Ok(mut entries) => f(&mut entries),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The live entry of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let ttl = self.ttl;
        self.with(|entries| match entries.get(key) {
            Some((at, v)) if at.elapsed() < ttl => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        })
    }

    /// Sets `key`; when full, expired entries go first, then the oldest.
    pub(crate) fn insert(&self, key: &str, value: V) {
        let (ttl, capacity) = (self.ttl, self.capacity);
        self.with(|entries| {
            if !entries.contains_key(key) && entries.len() >= capacity {
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
                if entries.len() >= capacity
                    && let Some(oldest) = entries
                        .iter()
                        .min_by_key(|(_, (at, _))| *at)
                        .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
            entries.insert(key.to_string(), (Instant::now(), value));
        });
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.with(|entries| {
            entries.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_evicts_the_oldest() {
        let c = TtlCache::new(Duration::from_secs(60), 2);
        c.insert("a", 1);
        c.insert("b", 2);
        c.insert("c", 3);
        assert_eq!(
            (c.get("a"), c.get("b"), c.get("c")),
            (None, Some(2), Some(3))
        );
        c.remove("b");
        assert_eq!(c.get("b"), None);
        let short = TtlCache::new(Duration::ZERO, 2);
        short.insert("a", 1);
        assert_eq!(short.get("a"), None);
    }
}
