//! Short-lived STS credentials for credential-expiry tests, used by [`crate::flaky::FlakyProxy`].
//!
//! AWS issues assumed-role credentials for 15 minutes at least, and moto, which does not check
//! signatures, accepts expired ones. To see a client renew its credentials within a test, the
//! proxy rewrites the `<Expiration>` of each STS answer carrying credentials to a near instant,
//! remembers the access key ids it handed out, and answers any later request signed with one
//! of those keys after its expiry as AWS does: HTTP 400 `ExpiredTokenException`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The access key id a SigV4 `Authorization` header was signed with
/// (`AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...`).
pub fn access_key_id(authorization: &str) -> Option<&str> {
    let rest = authorization.split("Credential=").nth(1)?;
    rest.split('/').next().filter(|k| !k.is_empty())
}

/// An STS XML answer with every `<Expiration>` of its credentials set to `until`, and the
/// access key ids it carries; `None` when it carries no credentials.
pub(crate) fn shorten(body: &str, until: SystemTime) -> Option<(String, Vec<String>)> {
    if !body.contains("<Credentials>") {
        return None;
    }
    let keys: Vec<String> = between_all(body, "<AccessKeyId>", "</AccessKeyId>")
        .into_iter()
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return None;
    }
    let stamp = rfc3339(until);
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("<Expiration>") {
        let open = start + "<Expiration>".len();
        let Some(len) = rest[open..].find("</Expiration>") else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&stamp);
        rest = &rest[open + len..];
    }
    out.push_str(rest);
    Some((out, keys))
}

fn between_all<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let from = start + open.len();
        let Some(len) = rest[from..].find(close) else {
            break;
        };
        found.push(&rest[from..from + len]);
        rest = &rest[from + len..];
    }
    found
}

/// `2026-12-04T22:36:38Z` for `t` (UTC, whole seconds).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        day_secs / 3_600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// Expiry of the access keys the proxy handed out, by key id.
#[derive(Default)]
pub(crate) struct Expiries {
    /// How long the credentials of each STS answer live; `None`: answers pass unchanged.
    pub lifetime: Option<Duration>,
    by_key: HashMap<String, SystemTime>,
}

impl Expiries {
    /// Rewrites an STS answer (see [`shorten`]) and remembers its keys; other bodies pass.
    pub(crate) fn rewrite(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let lifetime = self.lifetime?;
        let text = std::str::from_utf8(body).ok()?;
        let until = SystemTime::now() + lifetime;
        let (out, keys) = shorten(text, until)?;
        for k in keys {
            self.by_key.insert(k, until);
        }
        Some(out.into_bytes())
    }

    /// Whether a request signed with `authorization` uses a key past its expiry.
    pub(crate) fn expired(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(access_key_id)
            .and_then(|k| self.by_key.get(k))
            .is_some_and(|until| SystemTime::now() >= *until)
    }
}

/// AWS's answer to a request signed with expired credentials (JSON protocols; the AWS SDKs
/// read the code from `__type` and `x-amzn-ErrorType`).
pub(crate) const EXPIRED_BODY: &str = r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_every_expiration_and_collects_the_keys() {
        let body = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
            <Expiration>2026-12-04T23:36:38.434202Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let at = UNIX_EPOCH + Duration::from_secs(1_733_351_798);
        let (out, keys) = shorten(body, at).unwrap();
        assert_eq!(keys, ["ASIA1"]);
        assert!(
            out.contains("<Expiration>2024-12-04T22:36:38Z</Expiration>"),
            "{out}"
        );
        assert!(shorten("<GetSecretValueResponse/>", at).is_none());
    }

    #[test]
    fn formats_dates_and_reads_key_ids() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            access_key_id(
                "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x"
            ),
            Some("AKID")
        );
        assert_eq!(access_key_id("Bearer x"), None);
    }
}
