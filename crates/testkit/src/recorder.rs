//! A real HTTP(S) server for clients whose counterpart is "any HTTP endpoint" (a webhook): it
//! records every request it gets (method, path with query, headers, body) and answers each
//! with the response the test set last (status and body), so a test can assert what the
//! client sent and how it handles what came back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path and query, as sent (`/a/b?c=d`).
    pub path: String,
    /// The headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, as text (lossy).
    pub body: String,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers a request: status and body.
pub type Responder = Box<dyn Fn(&Recorded) -> (u16, String) + Send>;

struct State {
    requests: Vec<Recorded>,
    answer: Responder,
}

/// The server; it runs on a thread of its own until the test process ends.
pub struct Recorder {
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub url: String,
    /// The PEM CA that signed the server's certificate (HTTPS only).
    pub ca_pem: Option<String>,
    state: Arc<Mutex<State>>,
}

impl Recorder {
    /// Starts a plain HTTP server answering `200` with `body`.
    pub fn start(body: &str) -> Self {
        Self::start_with(constant(200, body), None)
    }

    /// Starts a plain HTTP server answering each request with what `responder` returns for
    /// it (a stand-in that checks what it gets).
    pub fn start_responding(responder: Responder) -> Self {
        Self::start_with(responder, None)
    }

    /// Starts an HTTPS server (a certificate for `localhost` and `127.0.0.1` from a fresh CA,
    /// in [`Recorder::ca_pem`]) answering `200` with `body`.
    pub fn start_tls(body: &str) -> Self {
        let (ca, config) = crate::pki::tls_server_config("recorder-ca");
        Self::start_with(constant(200, body), Some((ca, config)))
    }

    /// [`Recorder::start_tls`] answering each request with what `responder` returns for it.
    pub fn start_tls_responding(responder: Responder) -> Self {
        let (ca, config) = crate::pki::tls_server_config("recorder-ca");
        Self::start_with(responder, Some((ca, config)))
    }

    fn start_with(answer: Responder, tls: Option<(String, Arc<rustls::ServerConfig>)>) -> Self {
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            answer,
        }));
        let shared = state.clone();
        let acceptor = tls
            .as_ref()
            .map(|(_, c)| tokio_rustls::TlsAcceptor::from(c.clone()));
        let addr: SocketAddr = crate::background::serve_on_own_thread(move |tx| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (state, acceptor) = (shared.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(stream) = a.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        let (url, ca_pem) = match tls {
            Some((ca, _)) => (format!("https://localhost:{}", addr.port()), Some(ca)),
            None => (format!("http://{addr}"), None),
        };
        Self { url, ca_pem, state }
    }

    /// Answers every request from now on with `status` and `body`.
    pub fn answer(&self, status: u16, body: &str) {
        self.state.lock().unwrap().answer = constant(status, body);
    }

    /// The requests so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn handle(
    state: &Mutex<State>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let recorded = Recorded {
        method,
        path,
        headers,
        body,
    };
    let mut s = state.lock().unwrap();
    let (status, body) = (s.answer)(&recorded);
    s.requests.push(recorded);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn constant(status: u16, body: &str) -> Responder {
    let body = body.to_string();
    Box::new(move |_| (status, body.clone()))
}
