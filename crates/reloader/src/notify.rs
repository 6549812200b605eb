//! Upstream's two outgoing HTTP calls:
//! - `--webhook-url`: instead of reloading, POST upstream's constant body once per changed
//!   ConfigMap or Secret (here with the source's kind, name and namespace added, which
//!   upstream's receivers can ignore);
//! - `ALERT_ON_RELOAD=true`: after each reload, a message to Slack, Teams, Google Chat or a raw
//!   webhook (`ALERT_SINK`, `ALERT_WEBHOOK_URL`, `ALERT_WEBHOOK_PROXY`, `ALERT_ADDITIONAL_INFO`).
//!
//! Both are sent in the background (upstream sends alerts synchronously, so one slow webhook
//! stalls every reload) with a timeout, and a redirect counts as a failure, as upstream.

use std::time::Duration;

use serde_json::{Value, json};

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Slack incoming webhook (attachments payload).
    Slack,
    /// Microsoft Teams (`{"text": ...}`).
    Teams,
    /// Google Chat (`{"text": ...}`).
    GoogleChat,
    /// Anything else: the plain text, `*` stripped.
    Raw,
}

/// The alert settings from the environment.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// The sink.
    pub sink: Sink,
    /// `ALERT_WEBHOOK_URL`.
    pub url: String,
    /// `ALERT_ADDITIONAL_INFO`, put before the message as `"<info> : <msg>"`.
    pub additional_info: String,
}

impl Alerts {
    /// Reads `ALERT_ON_RELOAD`, `ALERT_SINK`, `ALERT_WEBHOOK_URL`, `ALERT_ADDITIONAL_INFO`;
    /// `None` unless alerts are on.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        if var("ALERT_ON_RELOAD") != "true" {
            return None;
        }
        let sink = match var("ALERT_SINK").to_ascii_lowercase().as_str() {
            "slack" => Sink::Slack,
            "teams" => Sink::Teams,
            "gchat" => Sink::GoogleChat,
            _ => Sink::Raw,
        };
        Some(Self {
            sink,
            url: var("ALERT_WEBHOOK_URL"),
            additional_info: var("ALERT_ADDITIONAL_INFO"),
        })
    }

    /// The body for one reload, as upstream words it.
    pub fn body(&self, message: &str) -> (Value, Option<String>) {
        let message = if self.additional_info.is_empty() {
            message.to_string()
        } else {
            format!("{} : {message}", self.additional_info)
        };
        match self.sink {
            Sink::Slack => (
                json!({"attachments": [{"author_name": "Reloader", "color": "good", "text": message}]}),
                None,
            ),
            Sink::Teams | Sink::GoogleChat => (json!({"text": message}), None),
            Sink::Raw => (Value::Null, Some(message.replace('*', ""))),
        }
    }
}

/// Upstream's alert message for one reloaded workload.
pub fn alert_message(
    source: &str,
    source_type: &str,
    namespace: &str,
    workload: &str,
    kind: &str,
) -> String {
    format!(
        "Reloader detected changes in *{source}* of type *{source_type}* in namespace *{namespace}*. Hence reloaded *{workload}* of type *{kind}* in namespace *{namespace}*"
    )
}

/// The HTTP client for both calls: no redirects, a timeout, an optional proxy
/// (`ALERT_WEBHOOK_PROXY`).
pub fn client() -> reqwest::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Ok(proxy) = std::env::var("ALERT_WEBHOOK_PROXY")
        && !proxy.is_empty()
    {
        builder = builder.proxy(reqwest::Proxy::all(proxy)?);
    }
    builder.build()
}

/// POSTs `json` (or `text` when given) to `url` in the background; failures are logged.
pub fn post(
    client: &reqwest::Client,
    url: &str,
    json: Value,
    text: Option<String>,
    what: &'static str,
) {
    let request = match text {
        Some(t) => client.post(url).body(t),
        None => client.post(url).json(&json),
    };
    tokio::spawn(async move {
        match request.send().await {
            Ok(r) if r.status().is_success() => tracing::debug!(what, "sent"),
            Ok(r) => tracing::warn!(what, status = %r.status(), "the receiver refused it"),
            Err(e) => tracing::warn!(what, error = %e, "could not send"),
        }
    });
}

/// Upstream's `--webhook-url` body, with the source named.
pub fn webhook_body(kind: &str, namespace: &str, name: &str) -> Value {
    json!({"webhook": "update successful", "kind": kind, "namespace": namespace, "name": name})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_get_upstream_shapes() {
        let msg = alert_message("db", "SECRET", "ns", "web", "Deployment");
        assert_eq!(
            msg,
            "Reloader detected changes in *db* of type *SECRET* in namespace *ns*. Hence reloaded *web* of type *Deployment* in namespace *ns*"
        );
        let alerts = |sink, info: &str| Alerts {
            sink,
            url: String::new(),
            additional_info: info.into(),
        };
        assert_eq!(alerts(Sink::Teams, "").body("m").0, json!({"text": "m"}));
        assert_eq!(
            alerts(Sink::GoogleChat, "prod").body("m").0,
            json!({"text": "prod : m"})
        );
        assert_eq!(
            alerts(Sink::Slack, "").body("m").0["attachments"][0]["text"],
            "m"
        );
        assert_eq!(
            alerts(Sink::Raw, "").body(&msg).1.unwrap(),
            msg.replace('*', "")
        );
    }
}
