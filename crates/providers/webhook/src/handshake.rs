//! The NTLM handshake of one call, in the order upstream's client (go-ntlmssp's `Negotiator`,
//! which upstream wraps around its transport for `auth.ntlm`) sends its requests:
//!
//! 1. the request without `Authorization`, in case the connection is already authenticated;
//!    an answer other than 401 is the answer;
//! 2. if that 401 offers neither `NTLM` nor `Negotiate` in `WWW-Authenticate`: the request
//!    with the credentials as `Authorization: Basic` (upstream's fallback for a server that
//!    asks for Basic); an answer other than 401 is the answer;
//! 3. if a 401 offers `NTLM` (preferred) or `Negotiate`: the request with `<scheme>
//!    <NEGOTIATE>`, then, when the 401 answering it carries a CHALLENGE token, with `<scheme>
//!    <AUTHENTICATE>`; that answer is the answer. No CHALLENGE: the 401 is the answer.
//!
//! All requests go over one [`Connection`], the one NTLM authenticates; when the endpoint
//! closes it after answering the anonymous or Basic request, a new one carries the NEGOTIATE
//! and AUTHENTICATE.

use base64::Engine;
use strongroom_provider_api::ProviderError;

use crate::connection::Connection;
use crate::http::{Answer, Prepared};
use crate::ntlm::NtlmCredentials;

/// What a 401's `WWW-Authenticate` headers offer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    ntlm: bool,
    negotiate: bool,
    /// The token of the first `NTLM <token>`.
    ntlm_token: Option<String>,
    /// The token of the first `Negotiate <token>`.
    negotiate_token: Option<String>,
}

impl Offer {
    fn read(headers: &reqwest::header::HeaderMap) -> Self {
        let mut offer = Self::default();
        let values = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        for value in values {
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            let (found, found_token) = match scheme {
                "NTLM" => (&mut offer.ntlm, &mut offer.ntlm_token),
                "Negotiate" => (&mut offer.negotiate, &mut offer.negotiate_token),
                _ => continue,
            };
            *found = true;
            let token = token.trim();
            if found_token.is_none() && !token.is_empty() {
                *found_token = Some(token.to_string());
            }
        }
        offer
    }

    /// The token offered with the scheme answered with ([`Offer::scheme`]).
    fn token(&self) -> Option<&str> {
        match self.scheme()? {
            "NTLM" => self.ntlm_token.as_deref(),
            _ => self.negotiate_token.as_deref(),
        }
    }

    /// The scheme to answer with: `NTLM` when offered, else `Negotiate`, else none.
    fn scheme(&self) -> Option<&'static str> {
        if self.ntlm {
            Some("NTLM")
        } else if self.negotiate {
            Some("Negotiate")
        } else {
            None
        }
    }
}

fn header(scheme: &str, token: &[u8]) -> String {
    format!(
        "{scheme} {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

/// Sends `request` on `connection` with the handshake. Returns the final answer and the scheme
/// the credentials went with (`NTLM`, `Negotiate` or `Basic`; none when the first, anonymous
/// request was answered).
pub async fn send(
    connection: &mut Connection,
    request: &Prepared,
    creds: &NtlmCredentials,
) -> Result<(Answer, Option<&'static str>), ProviderError> {
    let mut answer = connection.send(request, None).await?;
    if answer.status != reqwest::StatusCode::UNAUTHORIZED {
        return Ok((answer, None));
    }
    let mut offer = Offer::read(&answer.headers);
    let mut sent_with = None;
    if offer.scheme().is_none() {
        connection.reopen_if_closed().await?;
        let basic = format!("Basic {}", creds.basic());
        answer = connection.send(request, Some(&basic)).await?;
        sent_with = Some("Basic");
        if answer.status != reqwest::StatusCode::UNAUTHORIZED {
            return Ok((answer, sent_with));
        }
        offer = Offer::read(&answer.headers);
    }
    let Some(scheme) = offer.scheme() else {
        return Ok((answer, sent_with));
    };
    connection.reopen_if_closed().await?;
    let negotiate = header(scheme, &creds.negotiate_message()?);
    let answer = connection.send(request, Some(&negotiate)).await?;
    let offer = Offer::read(&answer.headers);
    let (Some(scheme), Some(token)) = (offer.scheme(), offer.token()) else {
        return Ok((answer, Some(scheme)));
    };
    let challenge = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| {
            ProviderError::Malformed("the endpoint's NTLM CHALLENGE is not base64".into())
        })?;
    let authenticate = header(scheme, &creds.authenticate_message(&challenge)?);
    let answer = connection.send(request, Some(&authenticate)).await?;
    Ok((answer, Some(scheme)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(values: &[&str]) -> Offer {
        let mut headers = reqwest::header::HeaderMap::new();
        for v in values {
            headers.append(
                reqwest::header::WWW_AUTHENTICATE,
                reqwest::header::HeaderValue::from_str(v).unwrap_or_else(|_| unreachable!()),
            );
        }
        Offer::read(&headers)
    }

    #[test]
    fn ntlm_is_preferred_to_negotiate_and_basic_is_no_handshake() {
        assert_eq!(offer(&["Negotiate", "NTLM"]).scheme(), Some("NTLM"));
        assert_eq!(
            offer(&["Negotiate, Basic realm=\"x\""]).scheme(),
            Some("Negotiate")
        );
        assert_eq!(offer(&["Basic realm=\"x\""]).scheme(), None);
        assert_eq!(offer(&[]).scheme(), None);
        let challenge = offer(&["NTLM TlRMTVNTUAACAAAA"]);
        assert_eq!(challenge.token(), Some("TlRMTVNTUAACAAAA"));
        assert_eq!(offer(&["NTLM"]).token(), None);
        // the token answered is the one of the scheme answered with
        assert_eq!(offer(&["Negotiate YQ==, NTLM Yg=="]).token(), Some("Yg=="));
        assert_eq!(offer(&["Negotiate YQ=="]).token(), Some("YQ=="));
    }
}
