//! `readYourWrites`: the `X-Vault-Index` states a store's answers carried, sent back with
//! each later request so that a standby node answers only once it holds those writes (a
//! standby that has not caught up waits or answers 412, which is retried).
//!
//! OpenBao (2.7 and later, on integrated storage) sends `base64({"cluster":…,"value":"N"})`;
//! the newest index per cluster is kept. Vault Enterprise's states are opaque here: the
//! latest one is kept, as its own client merges them server-side.

use std::sync::Mutex;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header carrying a replication state.
pub(crate) const INDEX_HEADER: HeaderName = HeaderName::from_static("x-vault-index");

/// The replication states one store has seen, newest per cluster.
#[derive(Debug, Default)]
pub(crate) struct IndexStates {
    states: Mutex<Vec<State>>,
}

/// One recorded state: the header value and what could be read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    raw: HeaderValue,
    /// The cluster and index of an OpenBao state; `None` for an opaque one.
    position: Option<(String, u64)>,
}

impl IndexStates {
    /// Records the states an answer carried.
    pub fn record(&self, headers: &HeaderMap) {
        let seen: Vec<State> = headers
            .get_all(&INDEX_HEADER)
            .iter()
            .map(|raw| State {
                raw: raw.clone(),
                position: raw.to_str().ok().and_then(position),
            })
            .collect();
        if seen.is_empty() {
            return;
        }
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for state in seen {
            merge(&mut states, state);
        }
    }

    /// Adds every recorded state to a request's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for state in states.iter() {
            headers.append(INDEX_HEADER, state.raw.clone());
        }
    }
}

/// Keeps `new` unless a state of the same cluster is at least as new; an opaque state
/// replaces the opaque one before it.
fn merge(states: &mut Vec<State>, new: State) {
    let same = |s: &State| match (&s.position, &new.position) {
        (Some((a, _)), Some((b, _))) => a == b,
        (None, None) => true,
        _ => false,
    };
    match states.iter_mut().find(|s| same(s)) {
        Some(old) => {
            let newer = match (&old.position, &new.position) {
                (Some((_, was)), Some((_, now))) => now > was,
                _ => true,
            };
            if newer {
                *old = new;
            }
        }
        None => states.push(new),
    }
}

/// The cluster and index of an OpenBao state (`base64` of `{"cluster":…,"value":"N"}`).
fn position(raw: &str) -> Option<(String, u64)> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let cluster = value.get("cluster")?.as_str()?.to_string();
    let index = match value.get("value")? {
        serde_json::Value::String(s) => s.parse().ok()?,
        serde_json::Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    Some((cluster, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openbao(cluster: &str, index: u64) -> HeaderValue {
        let json = format!(r#"{{"cluster":"{cluster}","value":"{index}"}}"#);
        HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).unwrap()
    }

    fn answer(values: &[HeaderValue]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(INDEX_HEADER, v.clone());
        }
        h
    }

    fn sent(states: &IndexStates) -> Vec<HeaderValue> {
        let mut h = HeaderMap::new();
        states.apply(&mut h);
        h.get_all(INDEX_HEADER).iter().cloned().collect()
    }

    #[test]
    fn nothing_is_sent_before_an_answer_carried_a_state() {
        let states = IndexStates::default();
        states.record(&HeaderMap::new());
        assert!(sent(&states).is_empty());
    }

    #[test]
    fn the_newest_index_per_cluster_is_kept() {
        let states = IndexStates::default();
        states.record(&answer(&[openbao("a", 44)]));
        states.record(&answer(&[openbao("a", 40)]));
        assert_eq!(sent(&states), vec![openbao("a", 44)]);
        states.record(&answer(&[openbao("a", 45), openbao("b", 3)]));
        assert_eq!(sent(&states), vec![openbao("a", 45), openbao("b", 3)]);
    }

    #[test]
    fn an_opaque_state_replaces_the_previous_opaque_one() {
        let states = IndexStates::default();
        let first = HeaderValue::from_static("v1:opaque:1");
        let second = HeaderValue::from_static("v1:opaque:2");
        states.record(&answer(&[first]));
        states.record(&answer(std::slice::from_ref(&second)));
        states.record(&answer(&[openbao("a", 1)]));
        assert_eq!(sent(&states), vec![second, openbao("a", 1)]);
    }

    #[test]
    fn openbao_states_are_read() {
        assert_eq!(
            position(openbao("c-1", 7).to_str().unwrap()),
            Some(("c-1".into(), 7))
        );
        assert_eq!(position("not base64!"), None);
        assert_eq!(position("e30="), None); // {}
    }
}
