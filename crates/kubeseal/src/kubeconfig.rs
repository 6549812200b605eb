//! The namespace of the current kubeconfig context, the fallback for Secrets without one.

use std::path::PathBuf;

/// The context namespace from `--kubeconfig`, `$KUBECONFIG` or `~/.kube/config`, if any.
pub fn context_namespace(kubeconfig: &str, context: &str) -> Option<String> {
    let path = if !kubeconfig.is_empty() {
        PathBuf::from(kubeconfig)
    } else if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        std::env::split_paths(&env).next()?
    } else {
        PathBuf::from(std::env::var_os("HOME")?).join(".kube/config")
    };
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    let current = if context.is_empty() {
        config.get("current-context")?.as_str()?.to_string()
    } else {
        context.to_string()
    };
    config
        .get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(current.as_str()))?
        .get("context")?
        .get("namespace")?
        .as_str()
        .filter(|ns| !ns.is_empty())
        .map(str::to_string)
}
