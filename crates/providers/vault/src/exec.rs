//! Runs vaultrs endpoints through the store's middleware: vaultrs's own (API version, token,
//! namespace) plus, for `readYourWrites`, the `X-Vault-Index` states sent and recorded.
//!
//! vaultrs's helper functions (`kv2::read`, …) apply only its own middleware and drop the
//! answer's headers, so the KV calls execute the same vaultrs endpoints here.

use rustify::endpoint::{Endpoint, MiddleWare};
use serde_json::Value;
use vaultrs::api::{EndpointMiddleware, EndpointResult};
use vaultrs::client::{Client as _, VaultClient};
use vaultrs::error::ClientError;

use crate::consistency::IndexStates;

/// A store's vaultrs client, with the replication states of `readYourWrites` (`None` when
/// the store does not ask for it).
#[derive(Clone, Copy)]
pub(crate) struct Session<'a> {
    /// The client carrying the store's token.
    pub vault: &'a VaultClient,
    /// The states to send and record.
    pub states: Option<&'a IndexStates>,
}

impl Session<'_> {
    /// An endpoint answered with Vault's envelope: its `data`.
    pub async fn data<E: Endpoint>(&self, endpoint: E) -> Result<E::Response, ClientError> {
        let answer = self.exec(endpoint).await?;
        let envelope: EndpointResult<E::Response> = answer.wrap().map_err(ClientError::from)?;
        envelope.data.ok_or(ClientError::ResponseDataEmptyError)
    }

    /// An endpoint whose answer is its response type itself.
    pub async fn plain<E: Endpoint>(&self, endpoint: E) -> Result<E::Response, ClientError> {
        self.exec(endpoint)
            .await?
            .parse()
            .map_err(ClientError::from)
    }

    /// An endpoint whose answer is not read.
    pub async fn empty<E: Endpoint>(&self, endpoint: E) -> Result<(), ClientError> {
        self.exec(endpoint).await.map(|_| ())
    }

    async fn exec<E: Endpoint>(
        &self,
        endpoint: E,
    ) -> Result<rustify::endpoint::EndpointResult<E::Response>, ClientError> {
        let middleware = Middleware {
            inner: self.vault.middle(),
            states: self.states,
        };
        endpoint
            .with_middleware(&middleware)
            .exec(self.vault.http())
            .await
            .map_err(api_error)
    }
}

/// vaultrs's middleware followed by the `X-Vault-Index` states.
struct Middleware<'a> {
    inner: &'a EndpointMiddleware,
    states: Option<&'a IndexStates>,
}

impl MiddleWare for Middleware<'_> {
    fn request<E: Endpoint>(
        &self,
        endpoint: &E,
        req: &mut http::Request<Vec<u8>>,
    ) -> Result<(), rustify::errors::ClientError> {
        self.inner.request(endpoint, req)?;
        if let Some(states) = self.states {
            states.apply(req.headers_mut());
        }
        Ok(())
    }

    fn response<E: Endpoint>(
        &self,
        endpoint: &E,
        resp: &mut http::Response<Vec<u8>>,
    ) -> Result<(), rustify::errors::ClientError> {
        if let Some(states) = self.states {
            states.record(resp.headers());
        }
        self.inner.response(endpoint, resp)
    }
}

/// A server's refusal with its `errors` strings, as vaultrs reports its own calls.
pub(crate) fn api_error(e: rustify::errors::ClientError) -> ClientError {
    if let rustify::errors::ClientError::ServerResponseError { code, content } = &e {
        let errors = content
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|v| v.get("errors").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default();
        return ClientError::APIError {
            code: *code,
            errors,
        };
    }
    ClientError::from(e)
}
