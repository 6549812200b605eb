//! The `webhook` provider: a store whose backend is any HTTP endpoint, as upstream's webhook
//! provider calls it, and the HTTP call the Webhook generator makes (the same spec, the same
//! templates, the same answer handling).
//!
//! * [`template`]: the data `url`, `body`, headers and `result.jsonPath` render with
//!   (`.remoteRef.*` and one map per `secrets[]` entry) and Go's `url.QueryEscape` for the URL.
//! * [`http`]: the HTTP client (the spec's CA or the system roots, the timeout) and one call,
//!   with the answer's status sorted into [`strongroom_provider_api::ProviderError`]s.
//! * [`answer`]: a value or a key map picked from a JSON answer by `result.jsonPath`.
//! * [`ntlm`]: `auth.ntlm`'s credentials and NTLM messages; [`handshake`]: the requests of an
//!   NTLM-authenticated call, on one [`connection`].
//! * [`generator`]: the Webhook generator's run.
//! * [`WebhookProvider`]: the provider (`spec.provider.webhook`).
//!
//! Messages never carry a rendered URL, a value of a referenced Secret or the answer's body.

pub mod answer;
mod connection;
pub mod generator;
mod handshake;
pub mod http;
pub mod ntlm;
mod provider;
mod spec;
pub mod template;

pub use provider::WebhookProvider;
pub use spec::{DEFAULT_TIMEOUT, check_spec, timeout};
