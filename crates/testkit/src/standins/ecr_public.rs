//! A stand-in for Amazon ECR Public's `GetAuthorizationToken`, since neither moto nor any other installable emulator serves ECR Public.
//!
//! Written from the published API reference, not from the provider: AWS JSON 1.1 protocol,
//! `POST /` with `X-Amz-Target: SpencerFrontendService.GetAuthorizationToken` and
//! `Content-Type: application/x-amz-json-1.1`; the answer is
//! `{"authorizationData": {"authorizationToken": <base64 "AWS:<token>">, "expiresAt": <epoch
//! seconds>}}` (one token for every public registry, no registry URL). A request without a
//! SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/ecr-public/
//! aws4_request, ...`) gets 403 `MissingAuthenticationTokenException`; any other target gets
//! 400 `UnknownOperationException`. Signatures are not verified. The stand-in keeps each
//! request's `Authorization` header so a test can check the client signed it, and for which
//! service and key.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The token the stand-in hands out (the password half of `AWS:<token>`).
pub const TOKEN: &str = "ecr-public-token-0123456789";
/// The expiry it answers (Unix seconds).
pub const EXPIRES_AT: i64 = 1_893_456_000;

/// A running stand-in; it serves on a thread of its own until the test process ends.
pub struct EcrPublicStandIn {
    /// `http://127.0.0.1:PORT`: the value of `AWS_ECR_PUBLIC_ENDPOINT`.
    pub url: String,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

impl EcrPublicStandIn {
    /// Starts the stand-in on a free loopback port.
    pub fn start() -> Self {
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let shared = authorizations.clone();
        let addr: SocketAddr = crate::background::serve_on_own_thread(move |tx| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            authorizations,
        }
    }

    /// The `Authorization` header of every `GetAuthorizationToken` request so far (`None`
    /// where there was none).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().unwrap().clone()
    }
}

fn json(status: u16, body: String, error: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(code) = error {
        r = r.header("x-amzn-ErrorType", code);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

async fn answer(
    authorizations: &Mutex<Vec<Option<String>>>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = req.into_body().collect().await;
    if target != "SpencerFrontendService.GetAuthorizationToken" {
        return json(
            400,
            format!(r#"{{"__type":"UnknownOperationException","message":"{target}"}}"#),
            Some("UnknownOperationException"),
        );
    }
    authorizations.lock().unwrap().push(authorization.clone());
    if !authorization.is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=")) {
        return json(
            403,
            r#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#.into(),
            Some("MissingAuthenticationTokenException"),
        );
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{TOKEN}"));
    json(
        200,
        format!(
            r#"{{"authorizationData":{{"authorizationToken":"{token}","expiresAt":{EXPIRES_AT}}}}}"#
        ),
        None,
    )
}
