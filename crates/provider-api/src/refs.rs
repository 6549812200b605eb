//! What a store is asked for: one remote value, a search, or a push target.

use std::collections::BTreeMap;

use crate::ProviderError;

/// One remote value (`data[].remoteRef`, `dataFrom[].extract`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteRef {
    /// Provider key, path or name.
    pub key: String,
    /// A part of a JSON value (provider-defined path syntax, gjson for most).
    pub property: Option<String>,
    /// A provider version (stage, version id, number).
    pub version: Option<String>,
    /// Return the key's metadata (tags, labels) instead of its value (`metadataPolicy: Fetch`).
    pub fetch_metadata: bool,
}

impl RemoteRef {
    /// A reference to the current value of `key`.
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }

    /// The same reference without its property: what a read cache is keyed by, since the
    /// property is applied to the value after reading.
    pub fn without_property(&self) -> Self {
        Self {
            property: None,
            ..self.clone()
        }
    }
}

/// A search (`dataFrom[].find`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindQuery {
    /// Only keys under this path (provider-defined).
    pub path: Option<String>,
    /// Only keys whose name matches this regular expression.
    pub name_regexp: Option<String>,
    /// Only keys carrying all these tags (labels, custom metadata).
    pub tags: BTreeMap<String, String>,
}

impl FindQuery {
    /// The compiled name filter; a pattern that does not compile is a configuration error.
    pub fn name_filter(&self) -> Result<Option<regex::Regex>, ProviderError> {
        self.name_regexp
            .as_deref()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| {
                    ProviderError::InvalidConfig(format!("find.name.regexp {p:?} is invalid: {e}"))
                })
            })
            .transpose()
    }

    /// Whether `tags` of a remote key satisfy the query (all asked-for tags present, equal).
    pub fn tags_match(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// Where a PushSecret writes one value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushRef {
    /// Provider key, path or name.
    pub remote_key: String,
    /// A member of a JSON value to set instead of the whole value.
    pub property: Option<String>,
    /// Provider-specific push options (`data[].metadata`).
    pub metadata: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_filters() {
        let q = FindQuery {
            name_regexp: Some("^db-".into()),
            tags: BTreeMap::from([("team".into(), "a".into())]),
            ..FindQuery::default()
        };
        let re = q.name_filter().ok().flatten();
        assert!(re.is_some_and(|r| r.is_match("db-main") && !r.is_match("web")));
        assert!(q.tags_match(&BTreeMap::from([
            ("team".into(), "a".into()),
            ("x".into(), "y".into())
        ])));
        assert!(!q.tags_match(&BTreeMap::new()));
        let bad = FindQuery {
            name_regexp: Some("(".into()),
            ..FindQuery::default()
        };
        assert!(matches!(
            bad.name_filter(),
            Err(ProviderError::InvalidConfig(_))
        ));
    }
}
