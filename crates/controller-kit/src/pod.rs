//! Who and where this replica is, from the downward API with fallbacks.

/// Where a pod's ServiceAccount namespace is mounted.
const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// This replica's identity (the leader Lease's holder): `POD_NAME`, else `HOSTNAME` (a pod's
/// hostname is its name), else `<fallback>-<pid>`.
pub fn identity(fallback: &str) -> String {
    non_empty_env("POD_NAME")
        .or_else(|| non_empty_env("HOSTNAME"))
        .unwrap_or_else(|| format!("{fallback}-{}", std::process::id()))
}

/// The controller's namespace: `POD_NAMESPACE`, else the ServiceAccount mount's, else `default`.
pub fn namespace() -> String {
    non_empty_env("POD_NAMESPACE")
        .or_else(|| {
            std::fs::read_to_string(SA_NAMESPACE_FILE)
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| "default".to_string())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
