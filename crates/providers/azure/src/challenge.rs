//! Key Vault's 401 challenge: `WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
//! resource="<resource>"` (or `scope="<resource>/.default"`). The client takes the resource
//! from it, and only when that resource's host is the vault's host or a parent domain of it
//! (the rule the Azure SDKs apply, without insisting on `*.vault.azure.net`), so a vault URL
//! cannot make the client fetch tokens for another service.

/// The parameters of one `Bearer` challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `authorization` or `authorization_uri`.
    pub authorization: Option<String>,
    /// `resource`, else `scope` without `/.default`.
    pub resource: Option<String>,
}

/// Parses a `WWW-Authenticate` value; `None` unless it is a Bearer challenge.
pub(crate) fn parse(header: &str) -> Option<Challenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Challenge::default();
    let mut scope = None;
    let mut input = params;
    while !input.trim().is_empty() {
        let trimmed = input.trim_start_matches([' ', ',']);
        let (name, after) = trimmed.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => out.authorization = Some(value.into()),
            "resource" => out.resource = Some(value.trim_end_matches('/').into()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        input = remaining;
    }
    if out.resource.is_none() {
        out.resource = scope.map(|s| {
            s.trim_end_matches("/.default")
                .trim_end_matches('/')
                .to_string()
        });
    }
    Some(out)
}

/// Whether a challenge's resource may be asked for on behalf of the vault at `vault_host`.
pub(crate) fn resource_fits(resource: &str, vault_host: &str) -> bool {
    let Ok(url) = url::Url::parse(resource) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    url.scheme() == "https" && (vault_host == host || vault_host.ends_with(&format!(".{host}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_both_shapes() {
        let c = parse(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(
            c.authorization.as_deref(),
            Some("https://login.microsoftonline.com/72f988bf")
        );
        let c = parse(r#"Bearer authorization_uri="https://x/t",scope="https://kv.test/.default""#)
            .unwrap();
        assert_eq!(c.resource.as_deref(), Some("https://kv.test"));
        assert!(parse("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn resource_must_be_the_vault_domain() {
        assert!(resource_fits(
            "https://vault.azure.net",
            "v.vault.azure.net"
        ));
        assert!(resource_fits("https://localhost", "localhost"));
        assert!(resource_fits("https://stack.test", "kv.stack.test"));
        assert!(!resource_fits(
            "https://management.azure.com",
            "v.vault.azure.net"
        ));
        assert!(!resource_fits("https://evil.test", "localhost"));
        assert!(!resource_fits("https://notstack.test", "kv.stack.test"));
    }
}
