//! One Vault token per store, kept alive for as long as the client lives.
//!
//! - A logged-in token is renewed with `auth/token/renew-self` at two thirds of its TTL while
//!   it is renewable and the renewal still grants the full TTL. A renewal that grants less has
//!   reached the token's max TTL: at two thirds of what is left, a fresh login replaces it.
//!   A failed renewal, or a token that is not renewable, is also replaced by a login.
//! - A static token (`tokenSecretRef`) is looked up once; it is renewed the same way when it is
//!   renewable and has a TTL, and never replaced by a login.
//! - A replaced token is revoked once the reads still using it are done; `close` revokes the
//!   current one (never a static token).
//! - A failed login keeps the old token (reads go on while it lives) and is retried.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use strongroom_provider_api::{ProviderEnv, ProviderError, StoreContext};
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettings};

use crate::auth::{self, Session};
use crate::config::{self, invalid};
use crate::vault::{self, Call, Retries};

/// The share of a TTL after which a token is renewed (or replaced).
pub(crate) const RENEW_AT: f64 = 2.0 / 3.0;
/// Bounds of the wait before retrying a failed login or renewal.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How long a replaced token waits for the reads still using it before it is revoked.
const DRAIN_WITHIN: Duration = Duration::from_secs(15);

/// A vaultrs client over our reqwest client, speaking to `namespace` with `token`.
pub(crate) fn vault_client(
    server: &str,
    http: reqwest::Client,
    token: &str,
    namespace: Option<String>,
) -> Result<VaultClient, ProviderError> {
    let address = reqwest::Url::parse(server)
        .map_err(|e| invalid(format!("server {server:?} is not a URL: {e}")))?;
    let namespace = namespace.filter(|n| !n.is_empty());
    Ok(VaultClient {
        http: rustify::clients::reqwest::Client::new(server, http),
        middle: EndpointMiddleware {
            token: token.to_string(),
            version: "v1".into(),
            wrap: None,
            namespace: namespace.clone(),
        },
        settings: VaultClientSettings {
            address,
            ca_certs: Vec::new(),
            identity: None,
            timeout: Some(config::REQUEST_TIMEOUT),
            token: token.to_string(),
            verify: true,
            version: 1,
            wrapping: false,
            namespace,
            proxy: None,
        },
    })
}

/// The token in use and what is known of its lease.
struct Current {
    client: Arc<VaultClient>,
    /// When the TTL below was granted.
    granted: Instant,
    /// The TTL granted last (`None`: the token does not expire, or is not known to).
    ttl: Option<Duration>,
    /// The TTL a login (or the token's creation) grants; renewals ask for it.
    full_ttl: Option<Duration>,
    renewable: bool,
    /// Whether we logged in for it (so it is revoked, and replaced by a login).
    logged_in: bool,
    /// A renewal granted less than the full TTL: the max TTL is near.
    capped: bool,
}

/// What to do next for the current token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Renew,
    Login,
}

impl Current {
    /// The next step and when, `None` when the token needs no care.
    fn next(&self) -> Option<(Instant, Step)> {
        let ttl = self.ttl?;
        if ttl.is_zero() {
            // A renewal granted nothing more: the token is at its end.
            return self.logged_in.then_some((self.granted, Step::Login));
        }
        let at = self.granted + ttl.mul_f64(RENEW_AT);
        if self.renewable && !self.capped {
            Some((at, Step::Renew))
        } else if self.logged_in {
            Some((at, Step::Login))
        } else {
            None
        }
    }

    /// When the token dies.
    fn expires(&self) -> Option<Instant> {
        self.ttl.filter(|t| !t.is_zero()).map(|t| self.granted + t)
    }
}

/// What a login needs, and the counts of logins and renewals (for the debug log lines).
struct Authenticator {
    store: StoreContext,
    env: ProviderEnv,
    server: String,
    http: reqwest::Client,
    namespace: Option<String>,
    login_namespace: Option<String>,
    /// How a failed login, lookup or renewal is retried (the store's `retrySettings`).
    retries: Retries,
    logins: AtomicU64,
    renewals: AtomicU64,
}

/// Keeps one store's token alive: the first login at `start`, then renewals and logins from
/// [`Keeper::maintain`].
pub(crate) struct Keeper {
    auth: Authenticator,
    current: RwLock<Arc<Current>>,
    closed: AtomicBool,
    /// Whether a token replaced by a login is revoked (not for generators: Vault would
    /// revoke the leases and tokens created with it).
    revoke_replaced: bool,
}

impl Authenticator {
    /// A login, or the static token with what a lookup says of it.
    async fn authenticate(&self) -> Result<Current, ProviderError> {
        let spec = config::spec(&self.store)?;
        let login_client = vault_client(
            &self.server,
            self.http.clone(),
            "",
            self.login_namespace.clone(),
        )?;
        let Session {
            token,
            lifetime,
            revocable,
            renewable,
        } = auth::login(&self.store, spec, &self.env, &login_client, self.retries).await?;
        let token = std::str::from_utf8(token.expose())
            .map_err(|_| ProviderError::Authentication("the Vault token is not UTF-8".into()))?
            .trim()
            .to_string();
        let client = Arc::new(vault_client(
            &self.server,
            self.http.clone(),
            &token,
            self.namespace.clone(),
        )?);
        if revocable {
            let logins = self.logins.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                store = %self.store.name,
                logins,
                ttl_seconds = lifetime.map(|l| l.as_secs()),
                renewable,
                "vault login"
            );
            return Ok(Current {
                client,
                granted: Instant::now(),
                ttl: lifetime,
                full_ttl: lifetime,
                renewable,
                logged_in: true,
                capped: false,
            });
        }
        // A static token: renewable and expiring only if a lookup says so (a failed lookup
        // leaves it alone: reads will tell).
        let looked_up = vault::run_retried(
            &self.env,
            self.retries,
            Call::LookupSelf,
            "look up the token",
            || vaultrs::token::lookup_self(&*client),
        )
        .await;
        let (ttl, full, renewable) = match looked_up {
            Ok(info) => (
                (info.ttl > 0).then(|| Duration::from_secs(info.ttl)),
                (info.creation_ttl > 0).then(|| Duration::from_secs(info.creation_ttl)),
                info.renewable.unwrap_or(false),
            ),
            Err(e) => {
                tracing::debug!(store = %self.store.name, error = %e, "vault static token lookup failed");
                (None, None, false)
            }
        };
        Ok(Current {
            client,
            granted: Instant::now(),
            ttl,
            full_ttl: full.or(ttl),
            renewable,
            logged_in: false,
            capped: false,
        })
    }

    /// `auth/token/renew-self` asking for the full TTL.
    async fn renew(&self, current: &Current) -> Result<Current, ProviderError> {
        let increment = current
            .full_ttl
            .or(current.ttl)
            .map(|t| format!("{}s", t.as_secs()));
        let client = current.client.clone();
        let info = vault::run_retried(
            &self.env,
            self.retries,
            Call::RenewSelf,
            "renew the token",
            || vaultrs::token::renew_self(&*client, increment.as_deref()),
        )
        .await?;
        let ttl = Duration::from_secs(info.lease_duration);
        // Vault grants the increment asked for, in whole seconds, unless the max TTL caps it.
        let capped = current.full_ttl.is_some_and(|full| ttl < full);
        let renewals = self.renewals.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            store = %self.store.name,
            renewals,
            ttl_seconds = ttl.as_secs(),
            max_ttl_reached = capped,
            "vault token renewed"
        );
        Ok(Current {
            client,
            granted: Instant::now(),
            ttl: Some(ttl),
            full_ttl: current.full_ttl,
            renewable: info.renewable,
            logged_in: current.logged_in,
            capped,
        })
    }
}

impl Keeper {
    /// Logs in (or looks the static token up) and returns the keeper of the token.
    pub async fn start(
        store: &StoreContext,
        env: ProviderEnv,
        server: String,
        http: reqwest::Client,
        revoke_replaced: bool,
    ) -> Result<Arc<Self>, ProviderError> {
        let spec = config::spec(store)?;
        let namespace = spec.namespace.clone();
        let login_namespace = spec
            .auth
            .as_ref()
            .and_then(|a| a.namespace.clone())
            .or_else(|| namespace.clone());
        let auth = Authenticator {
            store: store.clone(),
            env,
            server,
            http,
            namespace,
            login_namespace,
            retries: Retries::from_store(store)?,
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
        };
        let first = auth.authenticate().await?;
        let keeper = Self {
            auth,
            current: RwLock::new(Arc::new(first)),
            closed: AtomicBool::new(false),
            revoke_replaced,
        };
        Ok(Arc::new(keeper))
    }

    /// The client carrying the current token.
    pub fn client(&self) -> Arc<VaultClient> {
        self.current().client.clone()
    }

    /// Whether the current token was logged in for (and is revoked at close).
    pub fn logged_in(&self) -> bool {
        self.current().logged_in
    }

    /// Whether the keeper is open and its token not known to be expired.
    pub fn alive(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
            && self.current().expires().is_none_or(|e| e > Instant::now())
    }

    /// Whether the token is kept alive by [`Keeper::maintain`].
    pub fn maintained(&self) -> bool {
        self.current().next().is_some()
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, next: Current) -> Arc<Current> {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *guard, Arc::new(next))
    }

    /// Renews or replaces the token until the client is closed.
    pub async fn maintain(self: Arc<Self>) {
        let mut retry: Option<Step> = None;
        while !self.closed.load(Ordering::SeqCst) {
            let current = self.current();
            let step = match retry.take() {
                Some(step) => step,
                None => {
                    let Some((at, step)) = current.next() else {
                        return;
                    };
                    tokio::time::sleep_until(at.into()).await;
                    step
                }
            };
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let outcome = match step {
                Step::Renew => match self.auth.renew(&current).await {
                    Err(e) if current.logged_in => {
                        tracing::debug!(store = %self.auth.store.name, error = %e, "vault token renewal failed; logging in");
                        self.auth.authenticate().await
                    }
                    other => other,
                },
                Step::Login => self.auth.authenticate().await,
            };
            match outcome {
                Ok(next) => {
                    let replaced = !Arc::ptr_eq(&next.client, &current.client);
                    drop(current);
                    let old = self.set(next);
                    if replaced && old.logged_in && self.revoke_replaced {
                        self.revoke_when_drained(old).await;
                    }
                }
                Err(e) => {
                    let expired = current.expires().is_some_and(|t| t <= Instant::now());
                    if expired && !current.logged_in {
                        // A static token that died: nothing more to do here.
                        return;
                    }
                    let wait = retry_wait(current.expires());
                    tracing::warn!(
                        store = %self.auth.store.name,
                        error = %e,
                        retry_in_seconds = wait.as_secs_f64(),
                        "the vault token could not be renewed or replaced; the current one is used while it lives"
                    );
                    let step = if current.logged_in { Step::Login } else { step };
                    drop(current);
                    tokio::time::sleep(wait).await;
                    retry = Some(step);
                }
            }
        }
    }

    /// Revokes a replaced token once no read holds it (or after a bound).
    async fn revoke_when_drained(&self, old: Arc<Current>) {
        let since = Instant::now();
        while Arc::strong_count(&old.client) > 1 && since.elapsed() < DRAIN_WITHIN {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.revoke(&old).await;
    }

    async fn revoke(&self, token: &Current) {
        if !token.logged_in {
            return;
        }
        let client = token.client.clone();
        // Best effort: an unrevoked token still expires with its TTL.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            vault::run(
                &self.auth.env,
                Call::RevokeSelf,
                "revoke the token",
                async { vaultrs::token::revoke_self(&*client).await },
            ),
        )
        .await;
    }

    /// Stops the upkeep, leaving the token as it is.
    pub fn stop(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Stops the upkeep and revokes the current token (not a static one). Once only.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let current = self.current();
        self.revoke(&current).await;
    }
}

/// How long to wait before retrying: a third of what the token has left, within bounds.
fn retry_wait(expires: Option<Instant>) -> Duration {
    expires
        .map(|e| e.saturating_duration_since(Instant::now()) / 3)
        .unwrap_or(RETRY_MAX)
        .clamp(RETRY_MIN, RETRY_MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn current(ttl: Option<u64>, renewable: bool, logged_in: bool, capped: bool) -> Current {
        Current {
            client: Arc::new(
                vault_client("http://127.0.0.1:1", reqwest::Client::new(), "t", None).unwrap(),
            ),
            granted: Instant::now(),
            ttl: ttl.map(Duration::from_secs),
            full_ttl: ttl.map(Duration::from_secs),
            renewable,
            logged_in,
            capped,
        }
    }

    #[test]
    fn steps() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = current(Some(30), true, true, false);
        let (at, step) = c.next().unwrap();
        assert_eq!(step, Step::Renew);
        let after = at - c.granted;
        assert!(
            after > Duration::from_secs(19) && after < Duration::from_secs(21),
            "{after:?}"
        );
        assert_eq!(
            current(Some(30), true, true, true).next().unwrap().1,
            Step::Login
        );
        assert_eq!(
            current(Some(30), false, true, false).next().unwrap().1,
            Step::Login
        );
        assert_eq!(
            current(Some(30), true, false, false).next().unwrap().1,
            Step::Renew
        );
        assert!(
            current(Some(30), false, false, false).next().is_none(),
            "static, not renewable"
        );
        assert!(
            current(Some(30), true, false, true).next().is_none(),
            "static at max TTL"
        );
        assert!(current(None, true, true, false).next().is_none(), "no TTL");
        let mut spent = current(Some(0), true, true, true);
        spent.full_ttl = Some(Duration::from_secs(3));
        assert_eq!(spent.next().unwrap().1, Step::Login, "nothing left: log in");
        spent.logged_in = false;
        assert!(spent.next().is_none(), "a static token at its end");
    }

    #[test]
    fn retry_waits_are_bounded() {
        assert_eq!(retry_wait(None), RETRY_MAX);
        assert_eq!(retry_wait(Some(Instant::now())), RETRY_MIN);
        let w = retry_wait(Some(Instant::now() + Duration::from_secs(30)));
        assert!(
            w > Duration::from_secs(9) && w <= Duration::from_secs(10),
            "{w:?}"
        );
    }
}
