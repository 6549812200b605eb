//! The HTTP front: routing, request decoding, responses, and streaming watches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::discovery;
use crate::openapi;
use crate::partial;
use crate::patch::PatchType;
use crate::protobuf;
use crate::proxy;
use crate::rbac::{self, UserInfo};
use crate::resources::{ResourceType, string_list};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType, Propagation, Selection, Store, WriteOptions};
use crate::tokens::{self, TokenIssuer};

/// Largest request body (the real server's limit).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// Shared server state.
pub struct Api {
    /// The objects.
    pub store: Arc<Store>,
    /// Bearer token that grants everything; empty allows anonymous access.
    pub admin_token: String,
    /// How often watches send bookmarks.
    pub bookmark_interval: Duration,
    /// ServiceAccount token signer.
    pub tokens: TokenIssuer,
    /// Requests answered so far (benchmarks count API calls with it).
    pub requests: std::sync::atomic::AtomicU64,
    /// Requests answered so far by verb and resource, e.g. `patch secrets` or `watch sealedsecrets`.
    pub requests_by_kind: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Requests answered so far by authenticated user, then by verb and resource: tests tell
    /// which of several clients (each with its own ServiceAccount token) made a call.
    pub requests_by_user: std::sync::Mutex<RequestsByUser>,
    /// Whether requests are authorized by RBAC (else every authenticated user may do anything).
    pub rbac: bool,
    /// Users authenticated by static tokens (token to user).
    pub users: HashMap<String, UserInfo>,
    /// Permissions each user but the admin exercised (allowed requests).
    pub permissions_used: std::sync::Mutex<PermissionsByUser>,
    /// Permissions each user was denied (403 answers).
    pub permissions_denied: std::sync::Mutex<PermissionsByUser>,
    /// Where first uses of a permission are appended (see `Options::permission_log`).
    pub permission_log: Option<std::path::PathBuf>,
    /// How long a request that is not long-running may take (see `Options::request_timeout`).
    pub request_timeout: Duration,
}

/// Permissions per user name.
pub type PermissionsByUser =
    std::collections::BTreeMap<String, std::collections::BTreeSet<rbac::Permission>>;

/// Request counts per user (`admin`, `system:serviceaccount:<ns>:<name>`, `system:anonymous`),
/// then per `verb resource[/subresource]`.
pub type RequestsByUser =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// `verb resource[/subresource]` of a request, as Kubernetes audit logs name them; `other` for
/// discovery and everything that is not a resource path.
fn request_kind(method: &Method, path: &str, query: &str) -> String {
    let Some(rp) = parse_resource_path(path) else {
        return "other".to_string();
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, rp.name.is_some()) {
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => "other",
    };
    match rp.subresource {
        Some(sub) => format!("{verb} {}/{sub}", rp.resource),
        None => format!("{verb} {}", rp.resource),
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// The parts of a resource URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Resource plural.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` resource paths.
pub fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let mut p = ResourcePath {
        group,
        version,
        ..ResourcePath::default()
    };
    let rest: Vec<&str> = rest.to_vec();
    let rest = match rest.as_slice() {
        // /namespaces/{ns}/{resource}/... except the namespace's own subresources
        ["namespaces", ns, res, tail @ ..] if !matches!(*res, "status" | "finalize") => {
            p.namespace = Some(ns.to_string());
            let mut v = vec![*res];
            v.extend_from_slice(tail);
            v
        }
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [res] => p.resource = res.to_string(),
        [res, name] => {
            p.resource = res.to_string();
            p.name = Some(name.to_string());
        }
        [res, name, sub, ..] => {
            p.resource = res.to_string();
            p.name = Some(name.to_string());
            p.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    if p.resource.is_empty() || p.name.as_deref() == Some("") {
        return None;
    }
    Some(p)
}

/// A request header as text, or `default`.
fn header(req: &Request<Incoming>, name: hyper::header::HeaderName, default: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default)
        .to_string()
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

/// Decodes an object body: protobuf for the kinds typed clients write, else JSON or YAML.
fn decode_object(content_type: &str, bytes: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    if protobuf::is_protobuf(content_type) {
        protobuf::decode(bytes, rt)
    } else {
        parse_body(bytes, content_type)
    }
}

/// Deepest flow nesting (`{`, `[`) a YAML body may have: the decoder's own recursion limit.
/// Checked before parsing, which is quadratic in the nesting depth.
const MAX_YAML_FLOW_DEPTH: usize = 128;

/// Whether a YAML document nests flow collections deeper than `limit` (quoted text skipped).
fn yaml_too_deep(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut quote) = (0usize, None::<u8>);
    for &b in bytes {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'{' | b'[' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    false
}

/// Whether a `Content-Type` is YAML (`application/yaml`, `application/apply-patch+yaml`).
fn is_yaml(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    base.ends_with("yaml")
}

/// Parses a request body: YAML for YAML content types, else JSON (as the real server, which
/// does not take YAML in a JSON request).
fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(json_err) if !is_yaml(content_type) => Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {json_err}"
        ))),
        Err(_) if yaml_too_deep(bytes, MAX_YAML_FLOW_DEPTH) => Err(ApiError::bad_request(format!(
            "error converting YAML to JSON: yaml: exceeded max depth of {MAX_YAML_FLOW_DEPTH}"
        ))),
        Err(_) => serde_yaml_ng::from_slice::<Value>(bytes)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
    }
}

/// The `DeleteOptions` of a DELETE body (empty when there is none); 400 when it does not
/// decode.
fn delete_options(content_type: &str, body: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let options = decode_object(content_type, body, rt)?;
    if !options.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the DeleteOptions must be an object",
        ));
    }
    Ok(options)
}

/// What the real server's decoder refuses in a create or update body: a custom resource
/// without `kind`, and built-in fields of the wrong JSON type.
fn check_decoded(rt: &ResourceType, obj: &Value, body: &[u8]) -> Result<(), ApiError> {
    if rt.schema.is_some()
        && obj
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body).trim()
        )));
    }
    if let Some(problem) = crate::validation::check_types(rt, obj) {
        return Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {problem}",
            kind = rt.kind,
            version = rt.version
        )));
    }
    Ok(())
}

/// The 422 for invalid list options.
fn list_options_invalid(cause: &str) -> ApiError {
    let (field, message) = cause.split_once(": ").unwrap_or(("", cause));
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("ListOptions.meta.k8s.io \"\" is invalid: {cause}"),
        details: Some(
            json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{"reason": "FieldValueForbidden", "message": message, "field": field}]}),
        ),
    }
}

/// Whether DeleteOptions ask for `dryRun: ["All"]`.
fn dry_run_in(options: &Value) -> bool {
    options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"))
}

impl Api {
    /// Answers one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kind = request_kind(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        );
        *self
            .requests_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind.clone())
            .or_default() += 1;
        let user = self.user(&req);
        *self
            .requests_by_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(user)
            .or_default()
            .entry(kind)
            .or_default() += 1;
        let limit = crate::timeout::limit(
            req.method().as_str(),
            req.uri().path(),
            &query_map(req.uri().query()),
            self.request_timeout,
        );
        let routed = match limit {
            Some(limit) => tokio::time::timeout(limit, self.route(req))
                .await
                .unwrap_or_else(|_| Err(crate::timeout::timed_out())),
            None => self.route(req).await,
        };
        let resp = match routed {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        Ok(resp)
    }

    /// Who sent the request, as the real server names users: `admin` for the admin token, the
    /// ServiceAccount's user name for its token, `system:anonymous` otherwise.
    fn user(&self, req: &Request<Incoming>) -> String {
        self.authenticate(req)
            .map(|u| u.name)
            .unwrap_or_else(|| "system:anonymous".into())
    }

    /// The user a request authenticates as: the admin (in `system:masters`) for the admin
    /// token or when no token is configured, a configured user, or a ServiceAccount whose
    /// token is valid and whose account still exists; `None` otherwise (401).
    fn authenticate(&self, req: &Request<Incoming>) -> Option<UserInfo> {
        let admin = || UserInfo {
            name: "admin".into(),
            groups: vec![rbac::MASTERS.into(), rbac::AUTHENTICATED.into()],
        };
        if self.admin_token.is_empty() {
            return Some(admin());
        }
        let token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)?;
        if token == self.admin_token {
            return Some(admin());
        }
        if let Some(user) = self.users.get(token) {
            let mut user = user.clone();
            if !user.groups.iter().any(|g| g == rbac::AUTHENTICATED) {
                user.groups.push(rbac::AUTHENTICATED.into());
            }
            return Some(user);
        }
        let claims = self.tokens.verify(token)?;
        self.service_account_valid(&claims).then(|| {
            UserInfo::service_account(
                &claims.kubernetes.namespace,
                &claims.kubernetes.serviceaccount.name,
            )
        })
    }

    /// Applies `Impersonate-User`/`Impersonate-Group`: the requester needs the `impersonate`
    /// verb on `users` (or the ServiceAccount) and `groups`, as on a real server.
    fn impersonate(&self, req: &Request<Incoming>, user: UserInfo) -> Result<UserInfo, ApiError> {
        let values = |name: &str| -> Vec<String> {
            req.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let target = values("impersonate-user").into_iter().next();
        let groups = values("impersonate-group");
        let Some(target) = target else {
            if groups.is_empty() {
                return Ok(user);
            }
            return Err(ApiError::internal(format!(
                "requested {groups:?} without impersonating a user"
            )));
        };
        let authorizer = rbac::Rbac::new(&*self.store);
        let mut checks = Vec::new();
        match rbac::split_service_account(&target) {
            Some((ns, name)) => checks.push(rbac::Attributes {
                verb: "impersonate".into(),
                resource_request: true,
                resource: "serviceaccounts".into(),
                namespace: ns.into(),
                name: name.into(),
                ..rbac::Attributes::default()
            }),
            None => checks.push(rbac::Attributes {
                verb: "impersonate".into(),
                resource_request: true,
                resource: "users".into(),
                name: target.clone(),
                ..rbac::Attributes::default()
            }),
        }
        for g in &groups {
            checks.push(rbac::Attributes {
                verb: "impersonate".into(),
                resource_request: true,
                resource: "groups".into(),
                name: g.clone(),
                ..rbac::Attributes::default()
            });
        }
        for a in checks.iter().filter(|_| self.rbac) {
            let d = authorizer.authorize(&user, a);
            if !d.allowed {
                return Err(rbac::forbidden(&user.name, a, &d.reason));
            }
        }
        let mut out = UserInfo {
            name: target.clone(),
            groups,
        };
        if out.groups.is_empty()
            && let Some((ns, _)) = rbac::split_service_account(&target)
        {
            out.groups = rbac::service_account_groups(ns);
        }
        if target != "system:anonymous" && !out.groups.iter().any(|g| g == rbac::AUTHENTICATED) {
            out.groups.push(rbac::AUTHENTICATED.into());
        }
        Ok(out)
    }

    /// Appends a first use of `permission` by `user` to the permission log, if there is one.
    /// Best effort: a log that cannot be written is reported once per failure, never fatal.
    fn log_permission(&self, user: &str, permission: rbac::Permission) {
        let Some(path) = &self.permission_log else {
            return;
        };
        let mut line = serde_json::json!({"user": user, "rbac": self.rbac});
        if let (Some(map), Ok(serde_json::Value::Object(fields))) =
            (line.as_object_mut(), serde_json::to_value(permission))
        {
            map.extend(fields);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                use std::io::Write as _;
                writeln!(f, "{line}")
            });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot append to the permission log");
        }
    }

    /// Authorizes a request for `user` (RBAC, unless disabled) and records the permission it
    /// exercised or was denied.
    fn authorize_request(
        &self,
        user: &UserInfo,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
    ) -> Result<(), ApiError> {
        if user.is_master() {
            // the admin may do anything; its requests are not booked
            return Ok(());
        }
        let attrs = rbac::attributes(method.as_str(), path, query);
        let decision = if self.rbac {
            rbac::Rbac::new(&*self.store).authorize(user, &attrs)
        } else {
            rbac::Decision {
                allowed: true,
                reason: String::new(),
            }
        };
        if attrs.resource_request {
            let book = if decision.allowed {
                &self.permissions_used
            } else {
                &self.permissions_denied
            };
            let first = book
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(user.name.clone())
                .or_default()
                .insert(attrs.permission());
            if first && decision.allowed {
                self.log_permission(&user.name, attrs.permission());
            }
        }
        if decision.allowed {
            Ok(())
        } else {
            Err(rbac::forbidden(&user.name, &attrs, &decision.reason))
        }
    }

    /// SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview and
    /// SelfSubjectRulesReview.
    fn access_review(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        user: &UserInfo,
        body: &Value,
    ) -> Result<Response<Body>, ApiError> {
        let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        let authorizer = rbac::Rbac::new(&*self.store);
        let status = match rt.plural.as_str() {
            "selfsubjectrulesreviews" => {
                let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
                let (rules, errors) = authorizer.rules(user, ns);
                rbac::rules_review_status(&rules, &errors)
            }
            "selfsubjectaccessreviews" => {
                let a = rbac::review_attributes(&spec, None);
                rbac::review_status(&authorizer.authorize(user, &a))
            }
            _ => {
                let subject = UserInfo {
                    name: spec
                        .get("user")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    groups: string_list(&spec, "/groups"),
                };
                if let Some(ns) = namespace {
                    let asked = spec
                        .pointer("/resourceAttributes/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !asked.is_empty() && asked != ns {
                        return Err(ApiError::invalid(
                            rt,
                            "",
                            "spec.resourceAttributes.namespace",
                            &format!("Invalid value: {asked:?}: must match metadata.namespace"),
                        ));
                    }
                }
                let a = rbac::review_attributes(&spec, namespace);
                rbac::review_status(&authorizer.authorize(&subject, &a))
            }
        };
        let mut metadata = json!({"creationTimestamp": null});
        if let Some(ns) = namespace {
            metadata["namespace"] = json!(ns);
        }
        Ok(json_response(
            StatusCode::CREATED,
            &json!({
                "kind": rt.kind,
                "apiVersion": rt.api_version(),
                "metadata": metadata,
                "spec": spec,
                "status": status,
            }),
        ))
    }

    /// Whether the token's ServiceAccount still exists with the uid it was minted for.
    fn service_account_valid(&self, claims: &tokens::Claims) -> bool {
        let Some(rt) = self.store.resource("", "v1", "serviceaccounts") else {
            return false;
        };
        let sa = &claims.kubernetes.serviceaccount;
        self.store
            .get(&rt, &claims.kubernetes.namespace, &sa.name)
            .ok()
            .and_then(|o| {
                o.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|uid| uid == sa.uid)
    }

    fn token_request(
        &self,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<Response<Body>, ApiError> {
        let rt = self
            .store
            .resource("", "v1", "serviceaccounts")
            .ok_or_else(ApiError::unknown_resource)?;
        let sa = self.store.get(&rt, ns, name)?;
        let uid = sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let audiences = string_list(body, "/spec/audiences");
        let expiration = body
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600)
            .clamp(600, 48 * 3600);
        let (token, exp) = self
            .tokens
            .issue(ns, name, uid, audiences.clone(), expiration)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let expires = chrono::DateTime::from_timestamp(exp, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let audiences = if audiences.is_empty() {
            vec![tokens::ISSUER.to_string()]
        } else {
            audiences
        };
        Ok(json_response(
            StatusCode::CREATED,
            &json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
                "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null},
                "status": {"token": token, "expirationTimestamp": expires},
            }),
        ))
    }

    fn token_review(&self, body: &Value) -> Response<Body> {
        let token = body
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or("");
        let audiences = string_list(body, "/spec/audiences");
        let claims = self.tokens.verify(token);
        let valid = claims
            .as_ref()
            .is_some_and(|c| self.service_account_valid(c));
        let status = tokens::review_status(claims.as_ref(), &audiences, valid);
        json_response(
            StatusCode::CREATED,
            &json!({
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {"token": "", "audiences": audiences},
                "status": status,
            }),
        )
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_string();
        let host = header(&req, hyper::header::HOST, "127.0.0.1");
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain"),
                );
                return Ok(r);
            }
            "/openapi/v2" => {
                let mut r = Response::new(Full::new(Bytes::from(openapi::v2_protobuf())).boxed());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(openapi::V2_PROTOBUF),
                );
                return Ok(r);
            }
            "/.well-known/openid-configuration" => {
                return Ok(json_response(
                    StatusCode::OK,
                    &self.tokens.openid_configuration(),
                ));
            }
            "/openid/v1/jwks" => return Ok(json_response(StatusCode::OK, &self.tokens.jwks())),
            "/version" | "/version/" => {
                return Ok(json_response(StatusCode::OK, &discovery::version()));
            }
            _ => {}
        }
        let Some(user) = self.authenticate(&req) else {
            return Err(ApiError::unauthorized());
        };
        let user = self.impersonate(&req, user)?;
        let query = query_map(req.uri().query());
        self.authorize_request(&user, req.method(), &path, &query)?;
        let registry = self.store.registry();
        let trimmed = path.trim_end_matches('/');
        let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        if req.method() == Method::GET {
            let accept = header(&req, hyper::header::ACCEPT, "");
            if discovery::wants_aggregated(&accept) && matches!(segs.as_slice(), ["api"] | ["apis"])
            {
                let doc = discovery::aggregated(&registry, segs == ["api"]);
                let mut resp = json_response(StatusCode::OK, &doc);
                resp.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                );
                return Ok(resp);
            }
            let doc = match segs.as_slice() {
                ["api"] => Some(discovery::core_versions(&host)),
                ["apis"] => Some(discovery::group_list(&registry)),
                ["api", v] => discovery::resource_list(&registry, "", v),
                ["apis", g] => discovery::group(&registry, g),
                ["apis", g, v] => discovery::resource_list(&registry, g, v),
                ["openapi", "v3"] => Some(openapi::root(&registry)),
                ["openapi", "v3", "api", v] => openapi::group_version(&registry, "", v),
                ["openapi", "v3", "apis", g, v] => openapi::group_version(&registry, g, v),
                _ => None,
            };
            if let Some(doc) = doc {
                return Ok(json_response(StatusCode::OK, &doc));
            }
            if matches!(
                segs.as_slice(),
                ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _]
            ) {
                return Err(ApiError::unknown_resource());
            }
        }
        let Some(rp) = parse_resource_path(&path) else {
            return Err(ApiError::unknown_resource());
        };
        let rt = self
            .store
            .resource(&rp.group, &rp.version, &rp.resource)
            .ok_or_else(ApiError::unknown_resource)?;
        if !rt.namespaced && rp.namespace.is_some() {
            return Err(ApiError::unknown_resource());
        }
        if rt.group.is_empty()
            && rt.plural == "services"
            && rp.subresource.as_deref() == Some("proxy")
        {
            let ns = rp.namespace.clone().unwrap_or_default();
            let spec = rp.name.clone().unwrap_or_default();
            let marker = format!("/services/{spec}/proxy");
            let rest = path.split_once(&marker).map_or("", |(_, r)| r);
            let rest = if rest.is_empty() { "/" } else { rest };
            let path_and_query = match req.uri().query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_string(),
            };
            let backend = proxy::resolve(&self.store, &ns, &spec)?;
            let method = req.method().clone();
            let headers = req.headers().clone();
            let body = read_body(req).await?;
            let resp = proxy::forward(&backend, method, &path_and_query, &headers, body).await?;
            return Ok(resp.map(|b| b.boxed()));
        }
        if rt.group == "authorization.k8s.io" {
            if req.method() != Method::POST || rp.name.is_some() {
                return Err(ApiError::method_not_allowed(format!(
                    "{} only support create",
                    rt.plural
                )));
            }
            let content_type = header(&req, hyper::header::CONTENT_TYPE, "application/json");
            let body = decode_object(&content_type, &read_body(req).await?, &rt)?;
            return self.access_review(&rt, rp.namespace.as_deref(), &user, &body);
        }
        if rt.group == "authentication.k8s.io" && rt.plural == "tokenreviews" {
            if req.method() != Method::POST || rp.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "tokenreviews only support create",
                ));
            }
            let content_type = header(&req, hyper::header::CONTENT_TYPE, "application/json");
            let body = decode_object(&content_type, &read_body(req).await?, &rt)?;
            return Ok(self.token_review(&body));
        }
        if rt.group.is_empty()
            && rt.plural == "serviceaccounts"
            && rp.subresource.as_deref() == Some("token")
        {
            if req.method() != Method::POST {
                return Err(ApiError::method_not_allowed(
                    "serviceaccounts/token only supports create",
                ));
            }
            let ns = rp.namespace.clone().unwrap_or_default();
            let name = rp.name.clone().unwrap_or_default();
            let content_type = header(&req, hyper::header::CONTENT_TYPE, "application/json");
            let bytes = read_body(req).await?;
            let body = if bytes.is_empty() {
                json!({})
            } else {
                decode_object(&content_type, &bytes, &rt)?
            };
            return self.token_request(&ns, &name, &body);
        }
        if let Some(sub) = &rp.subresource
            && (sub != "status" || !rt.status_subresource)
        {
            return Err(ApiError::unknown_resource());
        }
        let method = req.method().clone();
        let not_allowed = match (&method, rp.name.is_some(), rp.subresource.is_some()) {
            (&Method::GET, _, _) => false,
            (_, _, true) => !matches!(method, Method::PUT | Method::PATCH),
            (&Method::POST | &Method::DELETE, false, false) => {
                rt.namespaced && rp.namespace.is_none()
            }
            (&Method::POST, true, false) => true,
            (&Method::PUT | &Method::PATCH, false, _) => true,
            _ => false,
        };
        if not_allowed {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let content_type = header(&req, hyper::header::CONTENT_TYPE, "application/json");
        let accept = header(&req, hyper::header::ACCEPT, "");
        let metadata_only = if crate::table::wanted(&accept) {
            Render::Table
        } else if partial::wanted(&accept) {
            Render::Metadata
        } else {
            Render::Full
        };
        tracing::debug!(%method, path = %path, content_type = %content_type, "request");
        let body = read_body(req).await?;
        let ns = rp.namespace.clone().unwrap_or_default();
        let opts = WriteOptions {
            field_manager: query.get("fieldManager").cloned(),
            force: truthy(&query, "force"),
            dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
            field_validation: crate::schema::FieldValidation::parse(
                query.get("fieldValidation").map(String::as_str),
            )?,
            warnings: crate::schema::Warnings::default(),
        };
        let warnings = opts.warnings.clone();
        // a JSON body is parsed once, noting duplicate fields on the way
        let mut parsed = None;
        if matches!(method, Method::POST | Method::PUT | Method::PATCH)
            && !protobuf::is_protobuf(&content_type)
            && !is_yaml(&content_type)
            && !body.iter().all(u8::is_ascii_whitespace)
        {
            let (value, found) = crate::schema::duplicates::parse(&body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?;
            crate::schema::check_duplicates(&rt, &body, found, opts.field_validation, &warnings)?;
            parsed = Some(value);
        }
        let sub = rp.subresource.as_deref();
        // writes of RBAC objects may not grant more than the user holds
        let escalation = (self.rbac && !user.is_master())
            .then(|| rbac::attributes(method.as_str(), &path, &query))
            .filter(crate::escalation::applies);
        // run under the store's lock with the write, so the check and the write see one state
        let escalation_guard =
            |src: &dyn rbac::RbacSource, old: Option<&Value>, new: &Value| match &escalation {
                Some(a) => crate::escalation::check_write(src, &user, a, old, new),
                None => Ok(()),
            };
        let result = match (method, rp.name.as_deref()) {
            (Method::GET, None) => {
                let sel = selection(&query, &rt, rp.namespace.clone())?;
                if truthy(&query, "watch") {
                    self.watch(&rt, sel, &query, metadata_only)
                } else {
                    self.list(&rt, &sel, &query, metadata_only)
                }
            }
            (Method::GET, Some(name)) => {
                let obj = self.store.get(&rt, &ns, name)?;
                let obj = match metadata_only {
                    Render::Metadata => partial::object(&obj),
                    Render::Table => crate::table::object(&rt, &obj),
                    Render::Full => obj,
                };
                Ok(json_response(StatusCode::OK, &obj))
            }
            (Method::POST, None) => {
                let obj = match parsed.take() {
                    Some(v) => v,
                    None => decode_object(&content_type, &body, &rt)?,
                };
                check_decoded(&rt, &obj, &body)?;
                let created = self
                    .store
                    .create_guarded(&rt, &ns, obj, &opts, &escalation_guard)?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            (Method::PUT, Some(name)) => {
                let obj = match parsed.take() {
                    Some(v) => v,
                    None => decode_object(&content_type, &body, &rt)?,
                };
                check_decoded(&rt, &obj, &body)?;
                Ok(json_response(
                    StatusCode::OK,
                    &self.store.replace_guarded(
                        &rt,
                        &ns,
                        name,
                        obj,
                        sub,
                        &opts,
                        &escalation_guard,
                    )?,
                ))
            }
            (Method::PATCH, Some(name)) => {
                let kind = PatchType::from_content_type(&content_type)?;
                let patch = match parsed.take() {
                    Some(v) => v,
                    None => parse_body(&body, &content_type)?,
                };
                let existed = self.store.get(&rt, &ns, name).is_ok();
                let out = self.store.patch_guarded(
                    &rt,
                    &ns,
                    name,
                    kind,
                    &patch,
                    sub,
                    &opts,
                    &escalation_guard,
                )?;
                let code = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(json_response(code, &out))
            }
            (Method::DELETE, Some(name)) => {
                let options = delete_options(&content_type, &body, &rt)?;
                let preconditions = crate::store::Preconditions {
                    uid: options
                        .pointer("/preconditions/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    resource_version: options
                        .pointer("/preconditions/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                };
                let dry_run = opts.dry_run || dry_run_in(&options);
                let out = self.store.delete(
                    &rt,
                    &ns,
                    name,
                    propagation(&query, &options),
                    &preconditions,
                    dry_run,
                )?;
                Ok(json_response(StatusCode::OK, &out))
            }
            (Method::DELETE, None) => {
                let options = delete_options(&content_type, &body, &rt)?;
                let sel = selection(&query, &rt, rp.namespace.clone())?;
                let dry_run = opts.dry_run || dry_run_in(&options);
                let deleted = self.store.delete_collection(
                    &rt,
                    &sel,
                    propagation(&query, &options),
                    dry_run,
                )?;
                Ok(json_response(
                    StatusCode::OK,
                    &list_object(&rt, deleted, self.store.current_rv(), None),
                ))
            }
            (m, _) => Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m})"
            ))),
        };
        let mut resp = result?;
        for w in warnings.take() {
            let text = format!("299 - {}", serde_json::Value::String(w));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&text) {
                resp.headers_mut().append("warning", v);
            }
        }
        Ok(resp)
    }

    fn list(
        &self,
        rt: &ResourceType,
        sel: &Selection,
        query: &HashMap<String, String>,
        metadata_only: Render,
    ) -> Result<Response<Body>, ApiError> {
        let limit = match query.get("limit") {
            Some(l) => Some(
                l.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            )
            .filter(|l| *l > 0),
            None => None,
        };
        let after = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let rv_param = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let (items, rv, next) = match query.get("resourceVersionMatch").map(String::as_str) {
            None | Some("") => self.store.list(rt, sel, limit, after.as_ref()),
            Some(_) if rv_param.is_empty() => {
                return Err(list_options_invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            Some("Exact") if rv_param == "0" => {
                return Err(list_options_invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            Some("Exact") => {
                let at = rv_param.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv_param:?}"))
                })?;
                self.store.list_at(rt, sel, at, limit, after.as_ref())?
            }
            Some("NotOlderThan") => self.store.list(rt, sel, limit, after.as_ref()),
            Some(other) => {
                return Err(list_options_invalid(&format!(
                    "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                )));
            }
        };
        let token = next.map(|k| encode_continue(&k));
        let list = list_object(rt, items, rv, token);
        let list = match metadata_only {
            Render::Metadata => partial::list(&list),
            Render::Table => crate::table::list(
                rt,
                list["items"].as_array().map_or(&[][..], Vec::as_slice),
                &list["metadata"],
            ),
            Render::Full => list,
        };
        Ok(json_response(StatusCode::OK, &list))
    }

    fn watch(
        &self,
        rt: &ResourceType,
        sel: Selection,
        query: &HashMap<String, String>,
        metadata_only: Render,
    ) -> Result<Response<Body>, ApiError> {
        let send_initial = truthy(query, "sendInitialEvents");
        let from =
            match query.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        let from = if send_initial { None } else { from };
        let bookmarks = truthy(query, "allowWatchBookmarks");
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
        let rt = rt.clone();
        let key = rt.storage_key();
        let interval = self.bookmark_interval;
        match self.store.watch(&rt, &sel, from) {
            Err(e) if e.code == 410 => {
                // the real server answers an expired watch with an ERROR event in a 200 stream
                let line = watch_line("ERROR", &e.to_status());
                tokio::spawn(async move {
                    let _ = tx.send(line).await;
                });
            }
            Err(e) => return Err(e),
            Ok((backlog, start_rv, mut live)) => {
                tokio::spawn(async move {
                    let mut last_rv = start_rv;
                    for ev in backlog {
                        let seen = ev.seen_as(&sel).unwrap_or(ev.kind);
                        if tx
                            .send(event_line(&ev, seen, &rt, metadata_only))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        last_rv = last_rv.max(ev.rv);
                    }
                    if send_initial {
                        let mut b = bookmark(&rt, start_rv);
                        b["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                        if tx.send(watch_line("BOOKMARK", &b)).await.is_err() {
                            return;
                        }
                    }
                    let deadline = tokio::time::Instant::now() + timeout;
                    let mut ticker = tokio::time::interval(interval);
                    ticker.tick().await;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(deadline) => return,
                            _ = ticker.tick(), if bookmarks => {
                                if tx.send(watch_line("BOOKMARK", &bookmark(&rt, last_rv))).await.is_err() {
                                    return;
                                }
                            }
                            msg = live.recv() => match msg {
                                Ok(ev) => {
                                    if ev.rv <= start_rv || ev.storage_key != key {
                                        continue;
                                    }
                                    let Some(seen) = ev.seen_as(&sel) else {
                                        continue;
                                    };
                                    last_rv = ev.rv;
                                    if tx.send(event_line(&ev, seen, &rt, metadata_only)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(RecvError::Lagged(_)) => {
                                    let e = ApiError::expired(last_rv, last_rv + 1);
                                    let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                                    return;
                                }
                                Err(RecvError::Closed) => return,
                            }
                        }
                    }
                });
            }
        }
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

fn selection(
    query: &HashMap<String, String>,
    rt: &ResourceType,
    namespace: Option<String>,
) -> Result<Selection, ApiError> {
    Ok(Selection {
        namespace,
        labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse_with(
            query.get("fieldSelector").map(String::as_str).unwrap_or(""),
            &rt.plural,
            &rt.selectable_fields,
        )?,
    })
}

fn propagation(query: &HashMap<String, String>, options: &Value) -> Propagation {
    let from_body = options.get("propagationPolicy").and_then(Value::as_str);
    let orphan_flag = options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    match query
        .get("propagationPolicy")
        .map(String::as_str)
        .or(from_body)
    {
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        _ if orphan_flag => Propagation::Orphan,
        _ => Propagation::Background,
    }
}

fn list_object(rt: &ResourceType, items: Vec<Value>, rv: u64, token: Option<String>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(t) = token {
        meta["continue"] = json!(t);
    }
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": meta,
        "items": items,
    })
}

fn encode_continue(key: &(String, String)) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!([key.0, key.1])).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    match v.as_slice() {
        [ns, name] => Ok((ns.clone(), name.clone())),
        _ => Err(bad()),
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How objects are rendered: in full, as `PartialObjectMetadata`, or as a `Table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Full,
    Metadata,
    Table,
}

fn event_line(ev: &Event, seen: EventType, rt: &ResourceType, render: Render) -> Bytes {
    let mut obj = ev.object.clone();
    obj["apiVersion"] = json!(rt.api_version());
    crate::schema::default_on_read(rt, &mut obj);
    match render {
        Render::Metadata => watch_line(seen.as_str(), &partial::object(&obj)),
        Render::Table => watch_line(seen.as_str(), &crate::table::object(rt, &obj)),
        Render::Full => watch_line(seen.as_str(), &obj),
    }
}

fn bookmark(rt: &ResourceType, rv: u64) -> Value {
    json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let p = parse_resource_path("/api/v1/namespaces/ns/secrets/s").unwrap();
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.resource.as_str(),
                p.name.as_deref()
            ),
            (Some("ns"), "secrets", Some("s"))
        );
        let p = parse_resource_path("/api/v1/namespaces/ns").unwrap();
        assert_eq!(
            (p.namespace, p.resource.as_str(), p.name.as_deref()),
            (None, "namespaces", Some("ns"))
        );
        let p = parse_resource_path("/api/v1/namespaces/ns/status").unwrap();
        assert_eq!(p.subresource.as_deref(), Some("status"));
        let p = parse_resource_path("/apis/apps/v1/namespaces/a/deployments/d/status").unwrap();
        assert_eq!(
            (p.group.as_str(), p.subresource.as_deref()),
            ("apps", Some("status"))
        );
        let p = parse_resource_path("/apis/bitnami.com/v1alpha1/sealedsecrets").unwrap();
        assert_eq!((p.namespace, p.name), (None, None));
        assert!(parse_resource_path("/apis/apps").is_none());
        assert!(parse_resource_path("/metrics").is_none());
    }

    #[test]
    fn names_requests_by_verb_and_resource() {
        let secrets = "/api/v1/namespaces/ns/secrets";
        assert_eq!(request_kind(&Method::GET, secrets, ""), "list secrets");
        assert_eq!(
            request_kind(&Method::GET, secrets, "watch=true&resourceVersion=5"),
            "watch secrets"
        );
        assert_eq!(
            request_kind(
                &Method::PATCH,
                "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/s/status",
                ""
            ),
            "patch sealedsecrets/status"
        );
        assert_eq!(
            request_kind(&Method::PUT, "/api/v1/namespaces/ns/secrets/s", ""),
            "update secrets"
        );
        assert_eq!(request_kind(&Method::GET, "/apis", ""), "other");
    }
}
