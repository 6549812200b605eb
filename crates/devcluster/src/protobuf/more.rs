//! Protobuf bodies of the other built-in kinds client-go's typed clients write: Leases (leader
//! election), core and `events.k8s.io` Events (event recorders), Endpoints and TokenReviews.

use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::events::v1 as events;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use serde_json::{Map, Value, json};

use super::{bad, insert_opt, metadata, time};
use crate::status::ApiError;

/// `MicroTime` as the real server writes it: RFC 3339 with microseconds.
fn micro_time(t: Option<meta::MicroTime>) -> Option<String> {
    let t = t?;
    let nanos = u32::try_from(t.nanos.unwrap_or(0)).unwrap_or(0);
    chrono::DateTime::from_timestamp(t.seconds?, nanos)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

fn object_reference(r: Option<core::ObjectReference>) -> Option<Value> {
    let r = r?;
    let mut m = Map::new();
    insert_opt(&mut m, "kind", r.kind);
    insert_opt(&mut m, "namespace", r.namespace);
    insert_opt(&mut m, "name", r.name);
    insert_opt(&mut m, "uid", r.uid);
    insert_opt(&mut m, "apiVersion", r.api_version);
    insert_opt(&mut m, "resourceVersion", r.resource_version);
    insert_opt(&mut m, "fieldPath", r.field_path);
    Some(Value::Object(m))
}

fn event_source(s: Option<core::EventSource>) -> Option<Value> {
    let s = s?;
    let mut m = Map::new();
    insert_opt(&mut m, "component", s.component);
    insert_opt(&mut m, "host", s.host);
    Some(Value::Object(m))
}

fn lease(l: coordination::Lease) -> Value {
    let s = l.spec.unwrap_or_default();
    let mut spec = Map::new();
    insert_opt(&mut spec, "holderIdentity", s.holder_identity);
    insert_opt(&mut spec, "leaseDurationSeconds", s.lease_duration_seconds);
    insert_opt(&mut spec, "acquireTime", micro_time(s.acquire_time));
    insert_opt(&mut spec, "renewTime", micro_time(s.renew_time));
    insert_opt(&mut spec, "leaseTransitions", s.lease_transitions);
    insert_opt(&mut spec, "strategy", s.strategy);
    insert_opt(&mut spec, "preferredHolder", s.preferred_holder);
    json!({"metadata": metadata(l.metadata), "spec": spec})
}

fn core_event(e: core::Event) -> Value {
    let mut m = Map::new();
    m.insert("metadata".into(), metadata(e.metadata));
    m.insert(
        "involvedObject".into(),
        object_reference(e.involved_object).unwrap_or_else(|| json!({})),
    );
    insert_opt(&mut m, "reason", e.reason);
    insert_opt(&mut m, "message", e.message);
    insert_opt(&mut m, "source", event_source(e.source));
    insert_opt(&mut m, "firstTimestamp", time(e.first_timestamp));
    insert_opt(&mut m, "lastTimestamp", time(e.last_timestamp));
    insert_opt(&mut m, "count", e.count);
    insert_opt(&mut m, "type", e.r#type);
    insert_opt(&mut m, "eventTime", micro_time(e.event_time));
    if let Some(s) = e.series {
        let mut series = Map::new();
        insert_opt(&mut series, "count", s.count);
        insert_opt(
            &mut series,
            "lastObservedTime",
            micro_time(s.last_observed_time),
        );
        m.insert("series".into(), Value::Object(series));
    }
    insert_opt(&mut m, "action", e.action);
    insert_opt(&mut m, "related", object_reference(e.related));
    insert_opt(&mut m, "reportingComponent", e.reporting_component);
    insert_opt(&mut m, "reportingInstance", e.reporting_instance);
    Value::Object(m)
}

fn events_event(e: events::Event) -> Value {
    let mut m = Map::new();
    m.insert("metadata".into(), metadata(e.metadata));
    insert_opt(&mut m, "eventTime", micro_time(e.event_time));
    if let Some(s) = e.series {
        let mut series = Map::new();
        insert_opt(&mut series, "count", s.count);
        insert_opt(
            &mut series,
            "lastObservedTime",
            micro_time(s.last_observed_time),
        );
        m.insert("series".into(), Value::Object(series));
    }
    insert_opt(&mut m, "reportingController", e.reporting_controller);
    insert_opt(&mut m, "reportingInstance", e.reporting_instance);
    insert_opt(&mut m, "action", e.action);
    insert_opt(&mut m, "reason", e.reason);
    insert_opt(&mut m, "regarding", object_reference(e.regarding));
    insert_opt(&mut m, "related", object_reference(e.related));
    insert_opt(&mut m, "note", e.note);
    insert_opt(&mut m, "type", e.r#type);
    insert_opt(
        &mut m,
        "deprecatedSource",
        event_source(e.deprecated_source),
    );
    insert_opt(
        &mut m,
        "deprecatedFirstTimestamp",
        time(e.deprecated_first_timestamp),
    );
    insert_opt(
        &mut m,
        "deprecatedLastTimestamp",
        time(e.deprecated_last_timestamp),
    );
    insert_opt(&mut m, "deprecatedCount", e.deprecated_count);
    Value::Object(m)
}

fn endpoint_address(a: core::EndpointAddress) -> Value {
    let mut m = Map::new();
    insert_opt(&mut m, "ip", a.ip);
    insert_opt(&mut m, "hostname", a.hostname);
    insert_opt(&mut m, "nodeName", a.node_name);
    insert_opt(&mut m, "targetRef", object_reference(a.target_ref));
    Value::Object(m)
}

fn endpoints(e: core::Endpoints) -> Value {
    let subsets: Vec<Value> = e
        .subsets
        .into_iter()
        .map(|s| {
            let mut m = Map::new();
            if !s.addresses.is_empty() {
                m.insert(
                    "addresses".into(),
                    s.addresses.into_iter().map(endpoint_address).collect(),
                );
            }
            if !s.not_ready_addresses.is_empty() {
                m.insert(
                    "notReadyAddresses".into(),
                    s.not_ready_addresses
                        .into_iter()
                        .map(endpoint_address)
                        .collect(),
                );
            }
            if !s.ports.is_empty() {
                let ports: Vec<Value> = s
                    .ports
                    .into_iter()
                    .map(|p| {
                        let mut pm = Map::new();
                        insert_opt(&mut pm, "name", p.name);
                        insert_opt(&mut pm, "port", p.port);
                        insert_opt(&mut pm, "protocol", p.protocol);
                        insert_opt(&mut pm, "appProtocol", p.app_protocol);
                        Value::Object(pm)
                    })
                    .collect();
                m.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(m)
        })
        .collect();
    let mut o = json!({"metadata": metadata(e.metadata)});
    if !subsets.is_empty() {
        o["subsets"] = Value::Array(subsets);
    }
    o
}

/// Decodes these kinds; `None` for others.
pub(super) fn decode(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, ApiError>> {
    let out = match (api_version, kind) {
        ("coordination.k8s.io/v1", "Lease") => coordination::Lease::decode(raw).map(lease),
        ("v1", "Event") => core::Event::decode(raw).map(core_event),
        ("events.k8s.io/v1", "Event") => events::Event::decode(raw).map(events_event),
        ("v1", "Endpoints") => core::Endpoints::decode(raw).map(endpoints),
        ("authentication.k8s.io/v1", "TokenReview") => authn::TokenReview::decode(raw).map(|r| {
            let s = r.spec.unwrap_or_default();
            let mut spec = Map::new();
            insert_opt(&mut spec, "token", s.token);
            if !s.audiences.is_empty() {
                spec.insert("audiences".into(), json!(s.audiences));
            }
            json!({"metadata": metadata(r.metadata), "spec": spec})
        }),
        _ => return None,
    };
    Some(out.map_err(bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_keep_micro_times() {
        let l = coordination::Lease {
            metadata: Some(meta::ObjectMeta {
                name: Some("leader".into()),
                ..Default::default()
            }),
            spec: Some(coordination::LeaseSpec {
                holder_identity: Some("pod-1".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(meta::MicroTime {
                    seconds: Some(1_700_000_000),
                    nanos: Some(123_456_000),
                }),
                ..Default::default()
            }),
        };
        let v = decode("coordination.k8s.io/v1", "Lease", &l.encode_to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(v["spec"]["holderIdentity"], "pod-1");
        assert_eq!(v["spec"]["renewTime"], "2023-11-14T22:13:20.123456Z");
    }
}
