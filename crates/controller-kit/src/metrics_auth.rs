//! `--metrics-auth`: the metrics endpoint answers only requests whose bearer token the API
//! server accepts (TokenReview) for a user it allows `get` on the request's path as a
//! non-resource URL (SubjectAccessReview), as controller-runtime's
//! `WithAuthenticationAndAuthorization` filter does. Grant scrapers a ClusterRole with
//! `nonResourceURLs: ["/metrics"]`, `verbs: ["get"]`. Verdicts are cached per token and path
//! for a minute (keyed by a SHA-256 of the token, which is never kept or logged).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use crate::http::{Reply, text};

/// How long a verdict is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Verdicts kept at most; the cache starts afresh beyond this.
const CACHE_MAX: usize = 1024;

/// What the API server said about a token and a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// Authenticated and allowed.
    Allowed,
    /// Not authenticated (no, or an unknown, token).
    Unauthenticated,
    /// Authenticated as the user named, and not allowed.
    Forbidden(String),
}

/// The authenticating and authorizing gate of the metrics endpoint.
pub struct MetricsAuth {
    client: kube::Client,
    cache: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

impl MetricsAuth {
    /// A gate asking the API server `client` talks to.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `None` when the request may go on; else the reply to send (401, 403, or 500 when the
    /// API server could not be asked).
    pub async fn check(&self, authorization: Option<&str>, path: &str) -> Option<Reply> {
        let Some(token) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Some(unauthorized());
        };
        let key = cache_key(token, path);
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&key)
                .filter(|(at, _)| at.elapsed() < CACHE_FOR)
                .map(|(_, v)| v.clone())
        };
        let verdict = match cached {
            Some(v) => v,
            None => match self.ask(token, path).await {
                Ok(v) => {
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(key, (Instant::now(), v.clone()));
                    v
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics authentication: the API server could not be asked");
                    return Some(text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Authentication or authorization could not be checked\n",
                        "text/plain",
                    ));
                }
            },
        };
        match verdict {
            Verdict::Allowed => None,
            Verdict::Unauthenticated => Some(unauthorized()),
            Verdict::Forbidden(user) => Some(text(
                StatusCode::FORBIDDEN,
                format!("Authorization denied for user {user}\n"),
                "text/plain",
            )),
        }
    }

    async fn ask(&self, token: &str, path: &str) -> Result<Verdict, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Verdict::Unauthenticated);
        };
        let name = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some("get".to_string()),
                }),
                resource_attributes: None,
            },
            ..Default::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(match decided.status.is_some_and(|s| s.allowed) {
            true => Verdict::Allowed,
            false => Verdict::Forbidden(name),
        })
    }
}

fn unauthorized() -> Reply {
    text(StatusCode::UNAUTHORIZED, "Unauthorized\n", "text/plain")
}

fn cache_key(token: &str, path: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(token.as_bytes());
    hash.update([0]);
    hash.update(path.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_separates_tokens_and_paths() {
        assert_ne!(cache_key("a", "/metrics"), cache_key("b", "/metrics"));
        assert_ne!(cache_key("a", "/metrics"), cache_key("a", "/other"));
        // the separator keeps token and path apart
        assert_ne!(cache_key("a/", "metrics"), cache_key("a", "/metrics"));
        assert_eq!(cache_key("a", "/metrics"), cache_key("a", "/metrics"));
    }
}
