//! One small HTTP/1 and HTTP/2 server used by the admin endpoints and by controllers' own APIs
//! (sealed-secrets' `/v1/*`): bind, accept, hand each request to a handler, stop on a token.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The response type every handler returns.
pub type Reply = Response<Full<Bytes>>;

/// A response with a status, a body and a content type.
pub fn text(code: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// Go's `:8080` means every interface; anything else must be `host:port`.
pub fn parse_listen_addr(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse()
        .map_err(|e| anyhow::anyhow!("invalid listen address {text:?}: {e}"))
}

/// Binds `listen` and serves `handler` until `stop` is cancelled; returns the bound address.
/// Binding errors are returned at once (a port in use is reported before anything else runs).
pub async fn serve<H, Fut>(
    listen: SocketAddr,
    handler: H,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr>
where
    H: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    serve_maybe_tls(listen, handler, stop, None).await
}

/// [`serve`], over TLS with `tls` when given.
pub async fn serve_maybe_tls<H, Fut>(
    listen: SocketAddr,
    handler: H,
    stop: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<SocketAddr>
where
    H: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((tcp, _)) = accepted else {
                continue;
            };
            let (handler, stop, acceptor) = (handler.clone(), stop.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => connection(TokioIo::new(tcp), handler, stop).await,
                    Some(acceptor) => {
                        // a failed handshake (a plain-HTTP client, say) ends this connection only
                        if let Ok(Ok(stream)) = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            connection(TokioIo::new(stream), handler, stop).await;
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Serves one connection until it closes or `stop` is cancelled.
async fn connection<IO, H, Fut>(io: TokioIo<IO>, handler: H, stop: CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let reply = handler(req);
        async move { Ok::<_, Infallible>(reply.await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = conn => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses() {
        assert_eq!(
            parse_listen_addr(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(parse_listen_addr("nope").is_err());
    }
}
