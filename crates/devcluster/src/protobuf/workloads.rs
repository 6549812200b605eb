//! Protobuf bodies of Services, Pods, the apps and batch workloads and
//! CustomResourceDefinitions (`kubectl create deployment/job/service/...`), converted field by
//! field through the generated `ToJson` impls.

use k8s_pb::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use prost::Message;
use serde_json::Value;

use super::bad;
use super::json::ToJson;
use crate::status::ApiError;

fn convert<T: Message + Default + ToJson>(raw: &[u8]) -> Result<Value, ApiError> {
    T::decode(raw).map(ToJson::to_json).map_err(bad)
}

/// Decodes the kinds above; `None` for other kinds.
pub(super) fn decode(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, ApiError>> {
    Some(match (api_version, kind) {
        ("v1", "Service") => convert::<core::Service>(raw),
        ("v1", "Pod") => convert::<core::Pod>(raw),
        ("apps/v1", "Deployment") => convert::<apps::Deployment>(raw),
        ("apps/v1", "DaemonSet") => convert::<apps::DaemonSet>(raw),
        ("apps/v1", "StatefulSet") => convert::<apps::StatefulSet>(raw),
        ("apps/v1", "ReplicaSet") => convert::<apps::ReplicaSet>(raw),
        ("batch/v1", "Job") => convert::<batch::Job>(raw),
        ("batch/v1", "CronJob") => convert::<batch::CronJob>(raw),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            convert::<apiext::CustomResourceDefinition>(raw)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use serde::{Serialize, de::DeserializeOwned};
    use serde_json::json;

    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: s(name),
            namespace: s("default"),
            // protobuf carries Go's zero values of non-pointer fields: they must not show
            generate_name: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: [("app".to_string(), name.to_string())].into(),
            ..Default::default()
        })
    }

    fn meta_json(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "labels": {"app": name}})
    }

    fn selector(name: &str) -> Option<meta::LabelSelector> {
        Some(meta::LabelSelector {
            match_labels: [("app".to_string(), name.to_string())].into(),
            ..Default::default()
        })
    }

    fn template(name: &str) -> Option<core::PodTemplateSpec> {
        Some(core::PodTemplateSpec {
            metadata: Some(meta::ObjectMeta {
                labels: [("app".to_string(), name.to_string())].into(),
                creation_timestamp: Some(meta::Time::default()),
                ..Default::default()
            }),
            spec: Some(pod_spec()),
        })
    }

    fn pod_spec() -> core::PodSpec {
        core::PodSpec {
            containers: vec![core::Container {
                name: s("app"),
                image: s("nginx:1"),
                command: vec!["sh".into(), "-c".into()],
                ports: vec![core::ContainerPort {
                    container_port: Some(8080),
                    protocol: s("TCP"),
                    host_port: Some(0),
                    host_ip: s(""),
                    ..Default::default()
                }],
                env: vec![core::EnvVar {
                    name: s("PASSWORD"),
                    value_from: Some(core::EnvVarSource {
                        secret_key_ref: Some(core::SecretKeySelector {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("db"),
                            }),
                            key: s("password"),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                resources: Some(core::ResourceRequirements {
                    limits: [(
                        "memory".to_string(),
                        k8s_pb::apimachinery::pkg::api::resource::Quantity { string: s("64Mi") },
                    )]
                    .into(),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: Some(0),
                                str_val: s("http"),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    timeout_seconds: Some(0),
                    ..Default::default()
                }),
                stdin: Some(false),
                ..Default::default()
            }],
            volumes: vec![core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                        default_mode: Some(0o400),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            restart_policy: s("Never"),
            host_network: Some(false),
            automount_service_account_token: Some(false),
            security_context: Some(core::PodSecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_spec_json() -> Value {
        json!({
            "containers": [{
                "name": "app",
                "image": "nginx:1",
                "command": ["sh", "-c"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}}],
                "resources": {"limits": {"memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 256}}],
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsUser": 0},
        })
    }

    /// Decodes `msg` as devcluster receives it (the `k8s\0` envelope) and checks it against
    /// the JSON a client would send, and that k8s-openapi's type reads back every field.
    fn check<M: Message, K: Serialize + DeserializeOwned>(
        api_version: &str,
        kind: &str,
        msg: &M,
        mut expected: Value,
    ) {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            raw: Some(msg.encode_to_vec()),
            content_encoding: s(""),
            content_type: s(""),
        };
        let mut bytes = b"k8s\0".to_vec();
        bytes.extend(unknown.encode_to_vec());
        let rt = crate::resources::builtins()
            .into_iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
            .unwrap();
        let got = crate::protobuf::decode(&bytes, &rt).unwrap();
        expected["apiVersion"] = json!(api_version);
        expected["kind"] = json!(kind);
        assert_eq!(got, expected, "{kind}");
        let typed: K = serde_json::from_value(got.clone()).unwrap();
        let mut typed = serde_json::to_value(typed).unwrap();
        // k8s-openapi adds apiVersion/kind to embedded objects (volumeClaimTemplates)
        if let Some(items) = typed
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut)
        {
            for i in items.iter_mut().filter_map(Value::as_object_mut) {
                i.remove("apiVersion");
                i.remove("kind");
            }
        }
        assert_eq!(typed, got, "{kind}: a field k8s-openapi does not know");
    }

    #[test]
    fn pods_and_services() {
        let pod = core::Pod {
            metadata: meta("p"),
            spec: Some(pod_spec()),
            status: None,
        };
        check::<_, k8s_openapi::api::core::v1::Pod>(
            "v1",
            "Pod",
            &pod,
            json!({"metadata": meta_json("p"), "spec": pod_spec_json()}),
        );
        let svc = core::Service {
            metadata: meta("svc"),
            spec: Some(core::ServiceSpec {
                ports: vec![core::ServicePort {
                    name: s("5678-8080"),
                    protocol: s("TCP"),
                    port: Some(5678),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    }),
                    node_port: Some(0),
                    ..Default::default()
                }],
                selector: [("app".to_string(), "svc".to_string())].into(),
                cluster_ip: s(""),
                r#type: s("ClusterIP"),
                ..Default::default()
            }),
            status: Some(core::ServiceStatus::default()),
        };
        check::<_, k8s_openapi::api::core::v1::Service>(
            "v1",
            "Service",
            &svc,
            json!({"metadata": meta_json("svc"), "spec": {
                "ports": [{"name": "5678-8080", "protocol": "TCP", "port": 5678, "targetPort": 8080}],
                "selector": {"app": "svc"},
                "type": "ClusterIP",
            }, "status": {}}),
        );
    }

    #[test]
    fn apps_workloads() {
        let d = apps::Deployment {
            metadata: meta("web"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: selector("web"),
                template: template("web"),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: s("25%"),
                        }),
                        max_surge: None,
                    }),
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        let template_json =
            json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec_json()});
        check::<_, k8s_openapi::api::apps::v1::Deployment>(
            "apps/v1",
            "Deployment",
            &d,
            json!({"metadata": meta_json("web"), "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            }}),
        );
        let ds = apps::DaemonSet {
            metadata: meta("web"),
            spec: Some(apps::DaemonSetSpec {
                selector: selector("web"),
                template: template("web"),
                revision_history_limit: Some(0),
                ..Default::default()
            }),
            status: None,
        };
        check::<_, k8s_openapi::api::apps::v1::DaemonSet>(
            "apps/v1",
            "DaemonSet",
            &ds,
            json!({"metadata": meta_json("web"), "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json,
                "revisionHistoryLimit": 0,
            }}),
        );
        let sts = apps::StatefulSet {
            metadata: meta("web"),
            spec: Some(apps::StatefulSetSpec {
                replicas: Some(3),
                selector: selector("web"),
                template: template("web"),
                service_name: s("web"),
                volume_claim_templates: vec![core::PersistentVolumeClaim {
                    metadata: Some(meta::ObjectMeta {
                        name: s("data"),
                        ..Default::default()
                    }),
                    spec: Some(core::PersistentVolumeClaimSpec {
                        access_modes: vec!["ReadWriteOnce".into()],
                        storage_class_name: s(""),
                        resources: Some(core::VolumeResourceRequirements {
                            requests: [(
                                "storage".to_string(),
                                k8s_pb::apimachinery::pkg::api::resource::Quantity {
                                    string: s("1Gi"),
                                },
                            )]
                            .into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    status: None,
                }],
                ..Default::default()
            }),
            status: None,
        };
        check::<_, k8s_openapi::api::apps::v1::StatefulSet>(
            "apps/v1",
            "StatefulSet",
            &sts,
            json!({"metadata": meta_json("web"), "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json,
                "serviceName": "web",
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "resources": {"requests": {"storage": "1Gi"}},
                }}],
            }}),
        );
        let rs = apps::ReplicaSet {
            metadata: meta("web"),
            spec: Some(apps::ReplicaSetSpec {
                replicas: Some(2),
                selector: selector("web"),
                template: template("web"),
                min_ready_seconds: Some(0),
            }),
            status: None,
        };
        check::<_, k8s_openapi::api::apps::v1::ReplicaSet>(
            "apps/v1",
            "ReplicaSet",
            &rs,
            json!({"metadata": meta_json("web"), "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json,
            }}),
        );
    }

    #[test]
    fn batch_workloads() {
        let spec = batch::JobSpec {
            template: template("job"),
            backoff_limit: Some(0),
            suspend: Some(false),
            ttl_seconds_after_finished: Some(60),
            ..Default::default()
        };
        let template_json =
            json!({"metadata": {"labels": {"app": "job"}}, "spec": pod_spec_json()});
        let spec_json = json!({
            "template": template_json,
            "backoffLimit": 0,
            "suspend": false,
            "ttlSecondsAfterFinished": 60,
        });
        let job = batch::Job {
            metadata: meta("once"),
            spec: Some(spec.clone()),
            status: None,
        };
        check::<_, k8s_openapi::api::batch::v1::Job>(
            "batch/v1",
            "Job",
            &job,
            json!({"metadata": meta_json("once"), "spec": spec_json}),
        );
        let cj = batch::CronJob {
            metadata: meta("nightly"),
            spec: Some(batch::CronJobSpec {
                schedule: s("0 0 * * *"),
                time_zone: s("Etc/UTC"),
                concurrency_policy: s("Forbid"),
                successful_jobs_history_limit: Some(0),
                job_template: Some(batch::JobTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        creation_timestamp: Some(meta::Time::default()),
                        ..Default::default()
                    }),
                    spec: Some(spec),
                }),
                ..Default::default()
            }),
            status: None,
        };
        check::<_, k8s_openapi::api::batch::v1::CronJob>(
            "batch/v1",
            "CronJob",
            &cj,
            json!({"metadata": meta_json("nightly"), "spec": {
                "schedule": "0 0 * * *",
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 0,
                "jobTemplate": {"metadata": {}, "spec": spec_json},
            }}),
        );
    }

    #[test]
    fn custom_resource_definitions() {
        let raw = |v: Value| apiext::Json {
            raw: Some(v.to_string().into_bytes()),
        };
        let string = apiext::JsonSchemaProps {
            r#type: s("string"),
            max_length: Some(0),
            nullable: Some(false),
            r#enum: vec![raw(json!("a")), raw(json!(""))],
            default: Some(raw(json!("a"))),
            ..Default::default()
        };
        let schema = apiext::JsonSchemaProps {
            r#type: s("object"),
            required: vec!["spec".into()],
            properties: [
                (
                    "spec".to_string(),
                    apiext::JsonSchemaProps {
                        r#type: s("object"),
                        properties: [("mode".to_string(), string)].into(),
                        additional_properties: None,
                        x_kubernetes_validations: vec![apiext::ValidationRule {
                            rule: s("self.mode != 'b'"),
                            message: s("no b"),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ),
                (
                    "extra".to_string(),
                    apiext::JsonSchemaProps {
                        r#type: s("object"),
                        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
                            allows: Some(true),
                            schema: Some(Box::new(apiext::JsonSchemaProps {
                                r#type: s("integer"),
                                minimum: Some(0.0),
                                ..Default::default()
                            })),
                        })),
                        x_kubernetes_preserve_unknown_fields: Some(false),
                        ..Default::default()
                    },
                ),
                (
                    "tags".to_string(),
                    apiext::JsonSchemaProps {
                        r#type: s("array"),
                        items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                            schema: Some(Box::new(apiext::JsonSchemaProps {
                                r#type: s("string"),
                                ..Default::default()
                            })),
                            j_son_schemas: vec![],
                        })),
                        x_kubernetes_list_type: s("set"),
                        ..Default::default()
                    },
                ),
            ]
            .into(),
            ..Default::default()
        };
        let crd = apiext::CustomResourceDefinition {
            metadata: Some(meta::ObjectMeta {
                name: s("widgets.example.com"),
                ..Default::default()
            }),
            spec: Some(apiext::CustomResourceDefinitionSpec {
                group: s("example.com"),
                names: Some(apiext::CustomResourceDefinitionNames {
                    plural: s("widgets"),
                    singular: s("widget"),
                    kind: s("Widget"),
                    list_kind: s(""),
                    ..Default::default()
                }),
                scope: s("Namespaced"),
                versions: vec![apiext::CustomResourceDefinitionVersion {
                    name: s("v1"),
                    served: Some(true),
                    storage: Some(false),
                    schema: Some(apiext::CustomResourceValidation {
                        open_apiv3_schema: Some(schema),
                    }),
                    subresources: Some(apiext::CustomResourceSubresources {
                        status: Some(apiext::CustomResourceSubresourceStatus {}),
                        scale: None,
                    }),
                    additional_printer_columns: vec![apiext::CustomResourceColumnDefinition {
                        name: s("Mode"),
                        r#type: s("string"),
                        json_path: s(".spec.mode"),
                        priority: Some(0),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                preserve_unknown_fields: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        check::<_, k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &crd,
            json!({"metadata": {"name": "widgets.example.com"}, "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": false,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"mode": {"type": "string", "maxLength": 0, "enum": ["a", ""], "default": "a"}},
                                "x-kubernetes-validations": [{"rule": "self.mode != 'b'", "message": "no b"}],
                            },
                            "extra": {
                                "type": "object",
                                "additionalProperties": {"type": "integer", "minimum": 0.0},
                                "x-kubernetes-preserve-unknown-fields": false,
                            },
                            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        },
                    }},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}],
                }],
            }}),
        );
    }
}
