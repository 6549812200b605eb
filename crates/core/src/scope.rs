//! Sealing scopes and the OAEP label each one binds into the ciphertext. Always built (the
//! SealedSecret type reads its scope from annotations); the crypto itself is in `sealing`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Annotation that marks a SealedSecret as sealed cluster-wide.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotation that marks a SealedSecret as sealed namespace-wide.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";

/// Which names a sealed value is bound to (upstream `--scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SealingScope {
    /// Bound to namespace and name (label `"<namespace>/<name>"`). The default.
    #[default]
    Strict,
    /// Bound to the namespace only (label `"<namespace>"`).
    NamespaceWide,
    /// Bound to nothing (empty label).
    ClusterWide,
}

impl SealingScope {
    /// All scopes, strictest first.
    pub const ALL: [SealingScope; 3] = [Self::Strict, Self::NamespaceWide, Self::ClusterWide];

    /// The scope as upstream spells it on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::NamespaceWide => "namespace-wide",
            Self::ClusterWide => "cluster-wide",
        }
    }

    /// Reads the scope from a SealedSecret's (or Secret's) annotations, as upstream does:
    /// the value must be exactly `"true"`, and cluster-wide wins over namespace-wide.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let is_true = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == "true")
        };
        if is_true(CLUSTER_WIDE_ANNOTATION) {
            Self::ClusterWide
        } else if is_true(NAMESPACE_WIDE_ANNOTATION) {
            Self::NamespaceWide
        } else {
            Self::Strict
        }
    }

    /// The annotation that expresses this scope, if any (strict needs none).
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Self::Strict => None,
            Self::NamespaceWide => Some(NAMESPACE_WIDE_ANNOTATION),
            Self::ClusterWide => Some(CLUSTER_WIDE_ANNOTATION),
        }
    }

    /// The OAEP label that binds a value to `namespace`/`name` under this scope.
    pub fn label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Self::Strict => format!("{namespace}/{name}").into_bytes(),
            Self::NamespaceWide => namespace.as_bytes().to_vec(),
            Self::ClusterWide => Vec::new(),
        }
    }

    /// Whether sealing under this scope needs a namespace and a name.
    pub fn needs_namespace(self) -> bool {
        !matches!(self, Self::ClusterWide)
    }

    /// Whether sealing under this scope needs a name.
    pub fn needs_name(self) -> bool {
        matches!(self, Self::Strict)
    }
}

impl fmt::Display for SealingScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a scope name that is not one of the three upstream spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected strict, namespace-wide or cluster-wide")]
pub struct UnknownScope(pub String);

impl FromStr for SealingScope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "namespace-wide" => Ok(Self::NamespaceWide),
            "cluster-wide" => Ok(Self::ClusterWide),
            other => Err(UnknownScope(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_match_upstream() {
        assert_eq!(SealingScope::Strict.label("ns", "n"), b"ns/n");
        assert_eq!(SealingScope::NamespaceWide.label("ns", "n"), b"ns");
        assert!(SealingScope::ClusterWide.label("ns", "n").is_empty());
    }

    #[test]
    fn annotations_decide_scope_and_cluster_wide_wins() {
        assert_eq!(SealingScope::from_annotations(None), SealingScope::Strict);
        let both = ann(&[
            (CLUSTER_WIDE_ANNOTATION, "true"),
            (NAMESPACE_WIDE_ANNOTATION, "true"),
        ]);
        assert_eq!(
            SealingScope::from_annotations(Some(&both)),
            SealingScope::ClusterWide
        );
        let ns = ann(&[(NAMESPACE_WIDE_ANNOTATION, "true")]);
        assert_eq!(
            SealingScope::from_annotations(Some(&ns)),
            SealingScope::NamespaceWide
        );
    }

    #[test]
    fn annotation_value_is_case_sensitive() {
        let a = ann(&[(CLUSTER_WIDE_ANNOTATION, "True")]);
        assert_eq!(
            SealingScope::from_annotations(Some(&a)),
            SealingScope::Strict
        );
    }

    #[test]
    fn parses_cli_spelling() {
        for s in SealingScope::ALL {
            assert_eq!(s.as_str().parse::<SealingScope>(), Ok(s));
        }
        assert!("Strict".parse::<SealingScope>().is_err());
    }
}
