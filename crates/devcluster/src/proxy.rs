//! The service proxy, `/api/v1/namespaces/{ns}/services/[scheme:]name[:port]/proxy/{path}`:
//! requests are forwarded to the first ready address of the Service's Endpoints, as the real
//! API server does. Tests point an Endpoints object at a process on 127.0.0.1.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::status::ApiError;
use crate::store::Store;

/// Splits `[scheme:]name[:port]`.
pub fn parse_target(spec: &str) -> (String, String, String) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => ("http".into(), name.to_string(), String::new()),
        [name, port] => ("http".into(), name.to_string(), port.to_string()),
        [scheme, name, port, ..] => (scheme.to_string(), name.to_string(), port.to_string()),
        [] => ("http".into(), String::new(), String::new()),
    }
}

/// Resolves the backend `ip:port` of a Service port through its Endpoints.
pub fn resolve(store: &Store, ns: &str, spec: &str) -> Result<String, ApiError> {
    let (_, name, port) = parse_target(spec);
    let svc_rt = store
        .resource("", "v1", "services")
        .ok_or_else(ApiError::unknown_resource)?;
    let svc = store.get(&svc_rt, ns, &name)?;
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let svc_port = ports
        .iter()
        .find(|p| {
            port.is_empty()
                || p.get("name").and_then(Value::as_str) == Some(port.as_str())
                || p.get("port").and_then(Value::as_i64).map(|n| n.to_string())
                    == Some(port.clone())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!("no such port {port:?} on service {ns}/{name}"))
        })?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    let unavailable = || ApiError {
        code: 503,
        reason: "ServiceUnavailable",
        message: format!("no endpoints available for service \"{name}\""),
        details: None,
    };
    let ep_rt = store
        .resource("", "v1", "endpoints")
        .ok_or_else(ApiError::unknown_resource)?;
    let endpoints = store.get(&ep_rt, ns, &name).map_err(|_| unavailable())?;
    for subset in endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ip = subset.pointer("/addresses/0/ip").and_then(Value::as_str);
        let ep_port = subset
            .get("ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                    .or_else(|| ps.first())
            })
            .and_then(|p| p.get("port"))
            .and_then(Value::as_i64);
        if let (Some(ip), Some(p)) = (ip, ep_port) {
            return Ok(format!("{ip}:{p}"));
        }
    }
    Err(unavailable())
}

/// Forwards one request to `backend` and relays the answer.
pub async fn forward(
    backend: &str,
    method: hyper::Method,
    path_and_query: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{backend}{path_and_query}");
    let mut req = Request::builder().method(method).uri(&uri);
    for name in [hyper::header::CONTENT_TYPE, hyper::header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| ApiError {
        code: 503,
        reason: "ServiceUnavailable",
        message: format!("error trying to reach service: {e}"),
        details: None,
    })?;
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .to_bytes();
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        out.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, ct.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_target_forms() {
        assert_eq!(
            parse_target("svc"),
            ("http".into(), "svc".into(), "".into())
        );
        assert_eq!(
            parse_target("svc:http"),
            ("http".into(), "svc".into(), "http".into())
        );
        assert_eq!(
            parse_target("http:svc:"),
            ("http".into(), "svc".into(), "".into())
        );
        assert_eq!(
            parse_target("https:svc:8443"),
            ("https".into(), "svc".into(), "8443".into())
        );
    }
}
