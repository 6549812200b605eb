//! A fault-injecting HTTP proxy in front of a real backend (moto, OpenBao): it forwards
//! requests unchanged, answers the next N requests with an error status instead, or stops
//! listening (connections refused) until told to come back. It counts the requests that
//! reached it, and when, so retry and rate-limit tests can assert how many attempts a client
//! made and how fast. It also keeps every request (signing key, body) for tests that check
//! what a client sent, and can shorten the life of the STS credentials passing through it
//! ([`crate::sts_expiry`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use crate::sts_expiry::{EXPIRED_BODY, Expiries};

struct State {
    /// Requests still to fail, and the status they get.
    fail_next: AtomicUsize,
    fail_status: AtomicU16,
    /// The headers and body of injected failures.
    fail_answer: Mutex<(Vec<(String, String)>, Bytes)>,
    /// When each request arrived, and whether it got an injected failure.
    log: Mutex<Vec<(Instant, bool)>>,
    /// Every request that reached the proxy (failed or forwarded).
    requests: AtomicUsize,
    /// Requests answered with an injected failure.
    failed: AtomicUsize,
    /// Down: no listener, and open connections are closed.
    down: watch::Sender<bool>,
    /// Every request, in the order its answer was sent.
    recorded: Mutex<Vec<RecordedRequest>>,
    /// Shortened STS credentials and their expiry.
    expiries: Mutex<Expiries>,
}

/// One request that reached the proxy, and the status it got.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// When it arrived.
    pub arrived: Instant,
    /// `POST`, `GET`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `X-Amz-Target` header (AWS JSON protocols name the operation there).
    pub target: Option<String>,
    /// The body, as text (lossy).
    pub body: String,
    /// The status of the answer (injected or forwarded).
    pub status: u16,
    /// Refused by the proxy as signed with expired credentials.
    pub expired: bool,
}

impl RecordedRequest {
    /// The access key id the request was signed with (SigV4).
    pub fn access_key_id(&self) -> Option<&str> {
        self.authorization
            .as_deref()
            .and_then(crate::sts_expiry::access_key_id)
    }

    /// The form fields of a form-encoded body (AWS query protocol: STS), in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The first form field named `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// The AWS operation: the form's `Action` (query protocol) or the part of `X-Amz-Target`
    /// after the dot (JSON protocol).
    pub fn operation(&self) -> Option<String> {
        self.field("Action").or_else(|| {
            self.target
                .as_deref()
                .and_then(|t| t.rsplit('.').next())
                .map(str::to_string)
        })
    }
}

/// The proxy; it runs on a thread of its own until the test process ends.
pub struct FlakyProxy {
    /// `http://127.0.0.1:PORT`: point the client under test here.
    pub url: String,
    state: Arc<State>,
}

impl FlakyProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`), up and passing everything.
    pub fn start(upstream: &str) -> Self {
        let state = Arc::new(State {
            fail_next: AtomicUsize::new(0),
            fail_status: AtomicU16::new(503),
            fail_answer: Mutex::new(default_failure()),
            log: Mutex::default(),
            requests: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            down: watch::Sender::new(false),
            recorded: Mutex::default(),
            expiries: Mutex::default(),
        });
        let upstream = upstream.trim_end_matches('/').to_string();
        let shared = state.clone();
        let addr: SocketAddr =
            crate::background::serve_on_own_thread(move |tx| serve(shared, upstream, tx));
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Answers the next `n` requests with `status` (a small JSON error body) instead of
    /// forwarding them.
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.state.fail_answer.lock().unwrap() = default_failure();
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Answers the next `n` requests with `status`, `headers` and `body` instead of forwarding
    /// them (say, a provider's own throttling answer).
    pub fn fail_next_with(&self, n: usize, status: u16, headers: &[(&str, &str)], body: &str) {
        *self.state.fail_answer.lock().unwrap() = (
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Bytes::from(body.to_string()),
        );
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// When each request so far arrived, and whether it got an injected failure.
    pub fn arrivals(&self) -> Vec<(Instant, bool)> {
        self.state.log.lock().unwrap().clone()
    }

    /// Stops listening (`true`: new connections are refused) or listens again on the same
    /// port (`false`).
    pub fn set_down(&self, down: bool) {
        self.state.down.send_replace(down);
    }

    /// Requests that reached the proxy so far (failed and forwarded).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with an injected failure so far.
    pub fn failed(&self) -> usize {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Every request so far, in the order it was answered.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// From now on, credentials handed out by STS through the proxy expire `lifetime` after
    /// the answer: their `<Expiration>` says so, and a later request signed with one of them
    /// after that instant is answered `ExpiredTokenException` (HTTP 400) instead of being
    /// forwarded, as AWS does. moto alone issues them for an hour and never refuses them.
    pub fn expire_sts_credentials_after(&self, lifetime: Duration) {
        self.state.expiries.lock().unwrap().lifetime = Some(lifetime);
    }

    /// Requests the proxy answered `ExpiredTokenException` itself (see
    /// [`FlakyProxy::expire_sts_credentials_after`]).
    pub fn expired_refusals(&self) -> usize {
        self.recorded().iter().filter(|r| r.expired).count()
    }
}

async fn serve(state: Arc<State>, upstream: String, tx: std::sync::mpsc::Sender<SocketAddr>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut addr: Option<SocketAddr> = None;
    let mut down = state.down.subscribe();
    loop {
        // Down: no listener at all, so connecting is refused.
        let _ = down.wait_for(|d| !*d).await;
        let listener = match addr {
            Some(a) => loop {
                match tokio::net::TcpListener::bind(a).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            },
            None => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let a = l.local_addr().unwrap();
                addr = Some(a);
                tx.send(a).unwrap();
                l
            }
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = down.wait_for(|d| *d) => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (state, client, upstream) = (state.clone(), client.clone(), upstream.clone());
            let mut closing = state.down.subscribe();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (state, client, upstream) =
                        (state.clone(), client.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(handle(&state, &client, &upstream, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                // Going down closes the open (kept-alive) connections too.
                tokio::select! {
                    _ = conn => {}
                    _ = closing.wait_for(|d| *d) => {}
                }
            });
        }
    }
}

/// The answer [`FlakyProxy::fail_next`] injects: a small JSON error.
fn default_failure() -> (Vec<(String, String)>, Bytes) {
    (
        vec![("content-type".into(), "application/json".into())],
        Bytes::from_static(b"{\"errors\":[\"injected by the test proxy\"]}"),
    )
}

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn handle(
    state: &State,
    client: &Upstream,
    upstream: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    state.requests.fetch_add(1, Ordering::SeqCst);
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    state.log.lock().unwrap().push((arrived, failing));
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut record = RecordedRequest {
        arrived,
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string(),
        authorization: header("authorization"),
        target: header("x-amz-target"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
        expired: false,
    };
    let answer = if failing {
        state.failed.fetch_add(1, Ordering::SeqCst);
        let status = state.fail_status.load(Ordering::SeqCst);
        let (headers, body) = state.fail_answer.lock().unwrap().clone();
        let mut answer = Response::builder().status(status);
        for (k, v) in &headers {
            answer = answer.header(k, v);
        }
        answer.body(Full::new(body)).unwrap()
    } else if state
        .expiries
        .lock()
        .unwrap()
        .expired(record.authorization.as_deref())
    {
        record.expired = true;
        Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-ErrorType", "ExpiredTokenException")
            .body(Full::new(Bytes::from_static(EXPIRED_BODY.as_bytes())))
            .unwrap()
    } else {
        forward(state, client, upstream, &record.path, parts, body).await
    };
    record.status = answer.status().as_u16();
    state.recorded.lock().unwrap().push(record);
    answer
}

/// Sends the request on to `upstream`; STS answers may get shortened credentials.
async fn forward(
    state: &State,
    client: &Upstream,
    upstream: &str,
    path: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut out = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST {
            out = out.header(k, v);
        }
    }
    let answer = match client.request(out.body(Full::new(body)).unwrap()).await {
        Ok(a) => a,
        Err(_) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
    };
    let (mut parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match state.expiries.lock().unwrap().rewrite(&body) {
        Some(shortened) => {
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            Response::from_parts(parts, Full::new(Bytes::from(shortened)))
        }
        None => Response::from_parts(parts, Full::new(body)),
    }
}
