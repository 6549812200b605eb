//! Which container of a pod template uses a ConfigMap or Secret (upstream's rules: a mounted
//! volume first, then env and envFrom; an init container's use is put on the first container),
//! and which of its keys it reads (for per-key triggers).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use crate::hash::SourceKind;

/// The keys of a source a pod template reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysUsed {
    /// The whole object (envFrom, a volume without items).
    All,
    /// Only these keys.
    Some(BTreeSet<String>),
}

impl KeysUsed {
    fn add(&mut self, key: &str) {
        if let Self::Some(keys) = self {
            keys.insert(key.to_string());
        }
    }
}

/// How a pod template uses one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The container that carries the reload variable (by index into `containers`).
    pub container: usize,
    /// The keys read.
    pub keys: KeysUsed,
}

/// The keys a volume's `items` pick, or `None` for the whole object.
fn items(items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>) -> Option<Vec<&str>> {
    items
        .as_ref()
        .filter(|i| !i.is_empty())
        .map(|i| i.iter().map(|k| k.key.as_str()).collect())
}

fn volume_source_names(v: &Volume, kind: SourceKind) -> Vec<(&str, Option<Vec<&str>>)> {
    let mut out = Vec::new();
    match kind {
        SourceKind::ConfigMap => {
            if let Some(cm) = &v.config_map {
                out.push((cm.name.as_str(), items(&cm.items)));
            }
        }
        SourceKind::Secret => {
            if let Some(s) = &v.secret
                && let Some(name) = s.secret_name.as_deref()
            {
                out.push((name, items(&s.items)));
            }
        }
        SourceKind::SecretProviderClass => {
            // a Secrets Store CSI volume names its class in volumeAttributes
            if let Some(name) = v
                .csi
                .as_ref()
                .and_then(|c| c.volume_attributes.as_ref())
                .and_then(|a| a.get("secretProviderClass"))
            {
                out.push((name.as_str(), None));
            }
            return out;
        }
    }
    if let Some(projected) = &v.projected {
        for src in projected.sources.iter().flatten() {
            match kind {
                SourceKind::ConfigMap => {
                    if let Some(cm) = &src.config_map {
                        out.push((cm.name.as_str(), items(&cm.items)));
                    }
                }
                SourceKind::Secret => {
                    if let Some(s) = &src.secret {
                        out.push((s.name.as_str(), items(&s.items)));
                    }
                }
                SourceKind::SecretProviderClass => {}
            }
        }
    }
    out
}

fn mounts(c: &Container, volume: &str) -> bool {
    c.volume_mounts.iter().flatten().any(|m| m.name == volume)
}

/// Keys of `name` that container `c` reads through env and envFrom; `None` if it reads none.
fn env_use(c: &Container, kind: SourceKind, name: &str) -> Option<KeysUsed> {
    let mut used: Option<KeysUsed> = None;
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        let key = match kind {
            SourceKind::ConfigMap => from
                .config_map_key_ref
                .as_ref()
                .filter(|r| r.name == name)
                .map(|r| r.key.as_str()),
            SourceKind::Secret => from
                .secret_key_ref
                .as_ref()
                .filter(|r| r.name == name)
                .map(|r| r.key.as_str()),
            SourceKind::SecretProviderClass => None,
        };
        if let Some(key) = key {
            used.get_or_insert_with(|| KeysUsed::Some(BTreeSet::new()))
                .add(key);
        }
    }
    let whole = c.env_from.iter().flatten().any(|f| match kind {
        SourceKind::ConfigMap => f.config_map_ref.as_ref().is_some_and(|r| r.name == name),
        SourceKind::Secret => f.secret_ref.as_ref().is_some_and(|r| r.name == name),
        SourceKind::SecretProviderClass => false,
    });
    if whole {
        used = Some(KeysUsed::All);
    }
    used
}

/// How `spec` uses source `name` of `kind`, or `None` when it does not.
pub fn usage(spec: &PodSpec, kind: SourceKind, name: &str) -> Option<Usage> {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    // 1. a volume of the source, mounted by a container (an init container: the first one)
    let mut keys: Option<KeysUsed> = None;
    let mut container: Option<usize> = None;
    for v in spec.volumes.iter().flatten() {
        for (source, items) in volume_source_names(v, kind) {
            if source != name {
                continue;
            }
            let by_container = spec.containers.iter().position(|c| mounts(c, &v.name));
            let by_init = inits.iter().any(|c| mounts(c, &v.name));
            if by_container.is_none() && !by_init {
                continue; // declared, not mounted: not a use
            }
            if container.is_none() {
                container = Some(by_container.unwrap_or(0));
            }
            match items {
                None => keys = Some(KeysUsed::All),
                Some(list) => {
                    let k = keys.get_or_insert_with(|| KeysUsed::Some(BTreeSet::new()));
                    for key in list {
                        k.add(key);
                    }
                }
            }
        }
    }
    // 2. env and envFrom of the containers, then of the init containers
    for (i, c) in spec.containers.iter().enumerate() {
        if let Some(used) = env_use(c, kind, name) {
            container.get_or_insert(i);
            keys = Some(merge(keys, used));
        }
    }
    for c in inits {
        if let Some(used) = env_use(c, kind, name) {
            container.get_or_insert(0);
            keys = Some(merge(keys, used));
        }
    }
    Some(Usage {
        container: container?,
        keys: keys.unwrap_or(KeysUsed::All),
    })
}

fn merge(a: Option<KeysUsed>, b: KeysUsed) -> KeysUsed {
    match (a, b) {
        (Some(KeysUsed::All), _) | (_, KeysUsed::All) => KeysUsed::All,
        (None, b) => b,
        (Some(KeysUsed::Some(mut x)), KeysUsed::Some(y)) => {
            x.extend(y);
            KeysUsed::Some(x)
        }
    }
}

/// Every (kind, name) a pod template uses, for the reverse index.
pub fn all_sources(spec: &PodSpec) -> BTreeSet<(SourceKind, String)> {
    let mut out = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        for kind in SourceKind::ALL {
            for (name, _) in volume_source_names(v, kind) {
                out.insert((kind, name.to_string()));
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    out.insert((SourceKind::ConfigMap, r.name.clone()));
                }
                if let Some(r) = &from.secret_key_ref {
                    out.insert((SourceKind::Secret, r.name.clone()));
                }
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                out.insert((SourceKind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &f.secret_ref {
                out.insert((SourceKind::Secret, r.name.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_mounted_volume_wins_and_names_its_container() {
        let s = spec(json!({
            "containers": [
                {"name": "a", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]},
                {"name": "b", "volumeMounts": [{"name": "creds", "mountPath": "/c"}]}
            ],
            "volumes": [{"name": "creds", "secret": {"secretName": "db"}}]
        }));
        let u = usage(&s, SourceKind::Secret, "db").unwrap();
        assert_eq!(u.container, 1, "the volume rule comes first");
        assert_eq!(u.keys, KeysUsed::All);
        assert!(
            usage(&s, SourceKind::ConfigMap, "db").is_none(),
            "kinds apart"
        );
    }

    #[test]
    fn declared_but_unmounted_volumes_fall_through_to_env() {
        let s = spec(json!({
            "containers": [
                {"name": "a"},
                {"name": "b", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k1"}}}]}
            ],
            "volumes": [{"name": "unused", "configMap": {"name": "cfg"}}]
        }));
        let u = usage(&s, SourceKind::ConfigMap, "cfg").unwrap();
        assert_eq!(u.container, 1);
        assert_eq!(u.keys, KeysUsed::Some(["k1".to_string()].into()));
    }

    #[test]
    fn init_containers_and_projected_volumes_map_to_the_first_container() {
        let s = spec(json!({
            "initContainers": [{"name": "init", "volumeMounts": [{"name": "p", "mountPath": "/p"}]}],
            "containers": [{"name": "main"}, {"name": "side"}],
            "volumes": [{"name": "p", "projected": {"sources": [
                {"secret": {"name": "tls", "items": [{"key": "tls.crt", "path": "c"}]}},
                {"configMap": {"name": "ca"}}
            ]}}]
        }));
        let u = usage(&s, SourceKind::Secret, "tls").unwrap();
        assert_eq!(u.container, 0);
        assert_eq!(u.keys, KeysUsed::Some(["tls.crt".to_string()].into()));
        assert!(usage(&s, SourceKind::ConfigMap, "ca").is_some());
        let init_env = spec(json!({
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "db"}}]}],
            "containers": [{"name": "main"}, {"name": "side"}]
        }));
        assert_eq!(
            usage(&init_env, SourceKind::Secret, "db")
                .unwrap()
                .container,
            0
        );
    }

    #[test]
    fn env_from_means_every_key_and_the_index_lists_all_sources() {
        let s = spec(json!({
            "containers": [{"name": "a",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}],
                "envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "cfg"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "other"}}]
        }));
        assert_eq!(
            usage(&s, SourceKind::Secret, "db").unwrap().keys,
            KeysUsed::All
        );
        let all = all_sources(&s);
        assert!(all.contains(&(SourceKind::Secret, "db".into())));
        assert!(all.contains(&(SourceKind::Secret, "other".into())));
        assert!(all.contains(&(SourceKind::ConfigMap, "cfg".into())));
        assert!(usage(&s, SourceKind::Secret, "missing").is_none());
    }
}
