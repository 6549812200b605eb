//! The request timeout of the real server: a request that is not long-running (watches,
//! proxies, exec, attach, port-forward and logs are) and takes longer than the server's
//! request timeout, or than its own `?timeout=`, is answered 504 Timeout.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::status::ApiError;

/// Subresources the real server treats as long-running.
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "proxy", "log", "portforward"];

/// How long a request may take, or `None` when it is long-running: the server's timeout, or
/// the request's `?timeout=` when shorter (an unreadable one is ignored).
pub fn limit(
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    server: Duration,
) -> Option<Duration> {
    let a = crate::rbac::attributes(method, path, query);
    let long_running = a.verb == "watch"
        || (a.resource_request && LONG_RUNNING_SUBRESOURCES.contains(&a.subresource.as_str()));
    if long_running {
        return None;
    }
    let asked = query
        .get("timeout")
        .and_then(|t| parse_go_duration(t))
        .filter(|d| !d.is_zero());
    Some(asked.map_or(server, |d| d.min(server)))
}

/// The real server's answer to a request that ran out of time.
pub fn timed_out() -> ApiError {
    ApiError {
        code: 504,
        reason: "Timeout",
        message: "Timeout: request did not complete within the allotted timeout".into(),
        details: Some(json!({})),
    }
}

/// Parses a Go duration (`30s`, `1m0s`, `1.5h`, `250ms`), as client-go sends `?timeout=`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * seconds;
        rest = after;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn long_running_requests_have_no_limit() {
        let server = Duration::from_secs(60);
        let path = "/api/v1/namespaces/x/configmaps";
        assert_eq!(limit("GET", path, &q(&[]), server), Some(server));
        assert_eq!(limit("GET", path, &q(&[("watch", "true")]), server), None);
        assert_eq!(
            limit(
                "GET",
                "/api/v1/watch/namespaces/x/configmaps",
                &q(&[]),
                server
            ),
            None
        );
        assert_eq!(
            limit("GET", "/api/v1/namespaces/x/pods/p/log", &q(&[]), server),
            None
        );
        assert_eq!(
            limit("POST", "/api/v1/namespaces/x/pods/p/exec", &q(&[]), server),
            None
        );
        assert_eq!(
            limit(
                "GET",
                "/api/v1/namespaces/x/services/http:s:80/proxy/a/b",
                &q(&[]),
                server
            ),
            None
        );
        assert_eq!(limit("GET", "/apis", &q(&[]), server), Some(server));
        assert_eq!(
            limit("POST", path, &q(&[("timeout", "1s")]), server),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            limit("POST", path, &q(&[("timeout", "2h")]), server),
            Some(server),
            "never longer than the server's"
        );
        assert_eq!(
            limit("POST", path, &q(&[("timeout", "soon")]), server),
            Some(server)
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "1x", "1..2s", "-1s", "99999999999999999999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
