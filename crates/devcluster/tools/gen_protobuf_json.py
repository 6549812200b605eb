#!/usr/bin/env python3
"""Generates crates/devcluster/src/protobuf/json_gen.rs: `ToJson` impls that turn k8s-pb
messages into the Kubernetes JSON form, for the kinds listed in ROOTS and every message they
reach. JSON field names come from k8s-openapi's serde code (the same Go json tags).

Run (needs k8s-pb and k8s-openapi in ~/.cargo/registry, i.e. after a build):
  python3 crates/devcluster/tools/gen_protobuf_json.py > crates/devcluster/src/protobuf/json_gen.rs
  cargo fmt --all
"""
import glob, os, re, sys

REG = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))[0]
PB = glob.glob(REG + "k8s-pb-0.9.*/src")[0]
OA = sorted(glob.glob(REG + "k8s-openapi-0.29.*/src"))[-1]

ROOTS = [
    "api::core::v1::Service", "api::core::v1::Pod",
    "api::apps::v1::Deployment", "api::apps::v1::DaemonSet", "api::apps::v1::StatefulSet",
    "api::apps::v1::ReplicaSet", "api::batch::v1::Job", "api::batch::v1::CronJob",
    "apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition",
]
# Hand-written in json.rs (the JSON form differs from the message's fields).
SPECIAL = {
    "apimachinery::pkg::apis::meta::v1::Time", "apimachinery::pkg::apis::meta::v1::MicroTime",
    "apimachinery::pkg::apis::meta::v1::Duration", "apimachinery::pkg::apis::meta::v1::FieldsV1",
    "apimachinery::pkg::api::resource::Quantity", "apimachinery::pkg::util::intstr::IntOrString",
    "apimachinery::pkg::runtime::RawExtension",
    "apiextensions_apiserver::pkg::apis::apiextensions::v1::Json",
    "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrArray",
    "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrBool",
    "apiextensions_apiserver::pkg::apis::apiextensions::v1::JsonSchemaPropsOrStringArray",
}
# Go pointer fields (and required fields) whose zero value ("", 0, false) is meaningful: kept.
# Every other scalar at its zero value is dropped, as Go's `omitempty` does for the
# non-pointer fields that protobuf always carries.
KEEP_ZERO = {
    "DeploymentSpec": "replicas revisionHistoryLimit progressDeadlineSeconds",
    "StatefulSetSpec": "replicas revisionHistoryLimit",
    "RollingUpdateStatefulSetStrategy": "partition",
    "ReplicaSetSpec": "replicas",
    "DaemonSetSpec": "revisionHistoryLimit",
    "JobSpec": "parallelism completions activeDeadlineSeconds backoffLimit backoffLimitPerIndex "
               "maxFailedIndexes ttlSecondsAfterFinished manualSelector suspend",
    "SuccessPolicyRule": "succeededCount",
    "CronJobSpec": "startingDeadlineSeconds suspend successfulJobsHistoryLimit failedJobsHistoryLimit",
    "PodSpec": "terminationGracePeriodSeconds activeDeadlineSeconds automountServiceAccountToken "
               "shareProcessNamespace priority enableServiceLinks setHostnameAsFQDN hostUsers",
    "PodSecurityContext": "runAsUser runAsGroup runAsNonRoot fsGroup",
    "SecurityContext": "privileged runAsUser runAsGroup runAsNonRoot readOnlyRootFilesystem "
                       "allowPrivilegeEscalation",
    "Probe": "terminationGracePeriodSeconds",
    "ConfigMapVolumeSource": "defaultMode optional",
    "SecretVolumeSource": "defaultMode optional",
    "ProjectedVolumeSource": "defaultMode",
    "DownwardAPIVolumeSource": "defaultMode",
    "KeyToPath": "mode", "DownwardAPIVolumeFile": "mode",
    "ConfigMapKeySelector": "optional", "SecretKeySelector": "optional",
    "ConfigMapEnvSource": "optional", "SecretEnvSource": "optional",
    "ConfigMapProjection": "optional", "SecretProjection": "optional",
    "ServiceAccountTokenProjection": "expirationSeconds",
    "ServiceSpec": "allocateLoadBalancerNodePorts",
    "ClientIPConfig": "timeoutSeconds",
    "PersistentVolumeClaimSpec": "storageClassName",
    "SleepAction": "seconds",
    "TopologySpreadConstraint": "maxSkew minDomains",
    "WeightedPodAffinityTerm": "weight", "PreferredSchedulingTerm": "weight",
    "Toleration": "tolerationSeconds",
    "ContainerPort": "containerPort", "ServicePort": "port",
    "JSONSchemaProps": "maximum minimum maxLength minLength maxItems minItems maxProperties "
                       "minProperties multipleOf x-kubernetes-preserve-unknown-fields",
    "CustomResourceDefinitionVersion": "served storage",
    "ValidationRule": "optionalOldSelf",
}
KEEP_ZERO = {k: set(v.split()) for k, v in KEEP_ZERO.items()}
# Go name of a prost struct where prost renamed it.
GO_NAME = {"JsonSchemaProps": "JSONSchemaProps"}
# JSON names k8s-openapi spells differently from prost's field names.
JSON_OVERRIDE = {
    ("JsonSchemaProps", "schema"): "$schema", ("JsonSchemaProps", "r#ref"): "$ref",
    ("JsonSchemaProps", "id"): "id",
}

def norm(s):
    return s.replace("_", "").replace("-", "").lower()


# Go embedded structs: their fields are inlined in the JSON object.
INLINE = {"ephemeral_container_common", "local_object_reference", "volume_source", "handler"}


def load_json_names():
    names = {}
    for f in glob.glob(OA + "/v1_3*/**/*.rs", recursive=True):
        for js, rs in re.findall(r'"([^"]+)" => Field::Key_(\w+),', open(f).read()):
            names.setdefault(rs.rstrip("_"), set()).add(js)
    return names

JSON_NAMES = load_json_names()


def load_struct_fields():
    """(module path, lowercased struct name) -> {normalized field: JSON name}."""
    out = {}
    for f in glob.glob(OA + "/v1_3*/**/*.rs", recursive=True):
        base = re.match(r".*/v1_3\d+", f).group(0)
        text = open(f).read()
        m = re.search(r"pub struct (\w+) \{", text)
        if not m:
            continue
        mod = os.path.relpath(os.path.dirname(f), base).replace("/", "::")
        fields = {norm(js): js for js, _ in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text)}
        out.setdefault((mod, m.group(1).lower()), {}).update(fields)
    return out


STRUCT_FIELDS = load_struct_fields()

def json_name(struct, field, mod=None):
    if field in INLINE:
        return None
    known = STRUCT_FIELDS.get((mod, struct.lower()))
    if known is not None and (struct, field) not in JSON_OVERRIDE:
        js = known.get(norm(field.removeprefix("r#")))
        if js is None:
            raise SystemExit(f"{mod}::{struct}.{field}: no such JSON field (embedded? add to INLINE)")
        return js
    if (struct, field) in JSON_OVERRIDE:
        return JSON_OVERRIDE[(struct, field)]
    f = field.removeprefix("r#")
    cands = JSON_NAMES.get(f, set())
    if len(cands) == 1:
        return next(iter(cands))
    # fall back: any known JSON name with the same letters
    matches = {j for js in JSON_NAMES.values() for j in js if norm(j) == norm(f)}
    if len(matches) == 1:
        return next(iter(matches))
    if cands:
        c = [j for j in cands if norm(j) == norm(f)]
        if len(c) == 1:
            return c[0]
    parts = f.split("_")
    guess = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    sys.stderr.write(f"warning: guessed {struct}.{field} -> {guess} ({sorted(cands or matches)})\n")
    return guess

def module_of(path):
    rel = os.path.relpath(os.path.dirname(path), PB)
    return rel.replace("/", "::")

STRUCTS = {}
for path in glob.glob(PB + "/**/mod.rs", recursive=True):
    mod = module_of(path)
    text = open(path).read()
    for m in re.finditer(r"pub struct (\w+) \{(\}|.*?\n\})", text, re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for a in re.finditer(
            r"#\[prost\(([^\]]*)\)\]\s*pub (r#\w+|\w+):\s*(.+?),\s*(?=///|#\[|\}$|$)", body, re.S
        ):
            fields.append((a.group(1), a.group(2), re.sub(r"\s+", "", a.group(3)).replace(",>", ">")))
        assert len(fields) == body.count("#[prost("), (name, len(fields), body.count("#[prost("))
        STRUCTS[mod + "::" + name] = (mod, name, fields)

def resolve(mod, ty):
    ty = ty.replace("::prost::alloc::boxed::Box<", "").replace(">", "")
    parts = ty.split("::")
    cur = mod.split("::")
    while parts[0] == "super":
        cur.pop(); parts.pop(0)
    return "::".join(cur + parts)

def message_type(mod, rust_ty):
    inner = re.search(r"(?:Option|Vec)<(.+)>$", rust_ty).group(1)
    return resolve(mod, inner)

out, seen, queue = [], set(), list(ROOTS)
while queue:
    full = queue.pop()
    if full in seen or full in SPECIAL:
        continue
    seen.add(full)
    mod, name, fields = STRUCTS[full]
    go = GO_NAME.get(name, name)
    lines = []
    for attr, field, ty in fields:
        js = json_name(name, field, mod)
        keep = "true" if js in KEEP_ZERO.get(go, ()) else "false"
        kind = attr.split(",")[0].strip()
        rep = "repeated" in attr
        f = f"self.{field}"
        if kind.startswith("btree_map"):
            vt = re.search(r'btree_map = "string, (\w+)(?:\(([\w:]+)\))?"', attr)
            vk = vt.group(1)
            if vk == "message":
                vty = resolve(mod, re.search(r"String,\s*(.+)>$", ty).group(1))
                queue.append(vty)
                lines.append(f'        put_map(&mut m, "{js}", {f});')
            elif vk == "bytes":
                lines.append(f'        put_bytes_map(&mut m, "{js}", {f});')
            else:
                lines.append(f'        put_map(&mut m, "{js}", {f});')
        elif kind == "message":
            queue.append(message_type(mod, ty))
            if field in INLINE:
                lines.append(f'        put_inline(&mut m, {f});')
            elif rep:
                lines.append(f'        put_list(&mut m, "{js}", {f});')
            elif "boxed" in attr:
                lines.append(f'        put_msg(&mut m, "{js}", {f}.map(|b| *b));')
            else:
                lines.append(f'        put_msg(&mut m, "{js}", {f});')
        elif kind.startswith("bytes"):
            lines.append(f'        put_bytes(&mut m, "{js}", {f}, {keep});')
        elif rep:
            lines.append(f'        put_list(&mut m, "{js}", {f});')
        else:
            lines.append(f'        put_scalar(&mut m, "{js}", {f}, {keep});')
    rpath = "k8s_pb::" + full
    body = ("        let mut m = Map::new();\n" + "\n".join(lines) + "\n        Value::Object(m)"
            if lines else "        Value::Object(Map::new())")
    out.append(f"impl ToJson for {rpath} {{\n    fn to_json(self) -> Value {{\n{body}\n    }}\n}}\n")

print("// @generated by crates/devcluster/tools/gen_protobuf_json.py; do not edit.")
print("//! `ToJson` for the k8s-pb messages of the kinds in the generator's ROOTS.\n")
print("use serde_json::{Map, Value};\n")
used = sorted({h for h in re.findall(r"(put_\w+)\(", "".join(out))})
print("use super::json::{" + ", ".join(["ToJson"] + used) + "};\n")
print("\n".join(sorted(out)))
