//! One HTTP/1.1 connection (TCP, with TLS for `https`) that every request of an NTLM
//! handshake goes over. NTLM authenticates the connection, not a request, so the handshake must
//! not move to another one: a pooled client may open a second connection for the next request
//! while the first is on its way back to the pool; this connection is the only one there is.
//! If the server closes it mid-handshake, the call fails (as it would for any NTLM client).
//!
//! No proxy is used (upstream's NTLM transport is a bare Go `http.Transport`, which reads no
//! proxy settings either).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use strongroom_provider_api::ProviderError;

use crate::http::{Answer, Prepared, append_limited};

fn unavailable(msg: String) -> ProviderError {
    ProviderError::Unavailable(format!("failed to call endpoint: {msg}"))
}

/// An open connection to one URL's host.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The `Host` header: the URL's authority.
    host: String,
    task: tokio::task::JoinHandle<()>,
    /// Where it goes and how, to open it again ([`Connection::reopen_if_closed`]).
    url: reqwest::Url,
    tls: Arc<rustls::ClientConfig>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Connects to `url`'s host and port, through TLS on `tls` for `https` (HTTP/1.1 offered
    /// by ALPN).
    pub async fn open(
        url: &reqwest::Url,
        tls: &rustls::ClientConfig,
    ) -> Result<Self, ProviderError> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| unavailable("the URL has no port".into()))?;
        let tcp = match url.host() {
            Some(url::Host::Domain(domain)) => tokio::net::TcpStream::connect((domain, port)).await,
            Some(url::Host::Ipv4(ip)) => tokio::net::TcpStream::connect((ip, port)).await,
            Some(url::Host::Ipv6(ip)) => tokio::net::TcpStream::connect((ip, port)).await,
            None => return Err(unavailable("the URL has no host".into())),
        }
        .map_err(|e| unavailable(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let again = (url.clone(), Arc::new(tls.clone()));
        match url.scheme() {
            "http" => Self::handshake(tcp, host, again).await,
            "https" => {
                let mut tls = tls.clone();
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = match url.host() {
                    Some(url::Host::Ipv4(ip)) => {
                        rustls::pki_types::ServerName::from(std::net::IpAddr::V4(ip))
                    }
                    Some(url::Host::Ipv6(ip)) => {
                        rustls::pki_types::ServerName::from(std::net::IpAddr::V6(ip))
                    }
                    _ => rustls::pki_types::ServerName::try_from(
                        url.host_str().unwrap_or_default().to_string(),
                    )
                    .map_err(|_| unavailable("the URL's host is not a valid TLS name".into()))?,
                };
                let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unavailable(format!("TLS handshake failed: {e}")))?;
                Self::handshake(stream, host, again).await
            }
            other => Err(ProviderError::InvalidConfig(format!(
                "failed to create request: unsupported protocol scheme {other:?}"
            ))),
        }
    }

    async fn handshake<S>(
        stream: S,
        host: String,
        (url, tls): (reqwest::Url, Arc<rustls::ClientConfig>),
    ) -> Result<Self, ProviderError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(format!("HTTP handshake failed: {e}")))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host,
            task,
            url,
            tls,
        })
    }

    /// Opens a new connection in place of this one when the endpoint has closed it (a 401
    /// with `Connection: close`, or an HTTP/1.0 server), as Go's transport dials again for the
    /// next request: only NEGOTIATE and AUTHENTICATE must share one connection.
    pub async fn reopen_if_closed(&mut self) -> Result<(), ProviderError> {
        if self.sender.ready().await.is_ok() {
            return Ok(());
        }
        let (url, tls) = (self.url.clone(), Arc::clone(&self.tls));
        *self = Self::open(&url, &tls).await?;
        Ok(())
    }

    /// Sends `request` on this connection with `Authorization` set to `authorization` (none
    /// when `None`; the spec's own `Authorization` header is never sent) and reads the whole
    /// answer.
    pub async fn send(
        &mut self,
        request: &Prepared,
        authorization: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        self.sender
            .ready()
            .await
            .map_err(|e| unavailable(format!("the endpoint closed the NTLM connection: {e}")))?;
        let url = request.url();
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut builder = hyper::Request::builder()
            .method(request.method().clone())
            .uri(target)
            .header(hyper::header::HOST, &self.host);
        for (name, value) in request.headers() {
            if name != hyper::header::AUTHORIZATION && name != hyper::header::HOST {
                builder = builder.header(name, value);
            }
        }
        if let Some(value) = authorization {
            let mut value = hyper::header::HeaderValue::from_str(value)
                .map_err(|_| ProviderError::InvalidConfig("invalid Authorization value".into()))?;
            value.set_sensitive(true);
            builder = builder.header(hyper::header::AUTHORIZATION, value);
        }
        let body = Full::new(Bytes::from(request.body().unwrap_or_default().to_string()));
        let http_request = builder
            .body(body)
            .map_err(|e| ProviderError::InvalidConfig(format!("failed to create request: {e}")))?;
        let response = self
            .sender
            .send_request(http_request)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let (parts, mut incoming) = response.into_parts();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| {
                ProviderError::Unavailable(format!("failed to read the answer: {e}"))
            })?;
            if let Some(data) = frame.data_ref() {
                append_limited(&mut body, data)?;
            }
        }
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
