//! The hashes upstream writes, computed by upstream's own recipe in Go (`fmt "%+v"` and
//! `golang.org/x/crypto/sha3`, the packages ESO's `utils.ObjectHash` uses), compared with
//! ours: `data-hash`, `created-by` and the hash part of `syncedResourceVersion`. A mismatch
//! would make every Secret upstream wrote look drifted after the swap (a rewrite wave).
//!
//! Needs Go and `golang.org/x/crypto` in GOPATH mode from Debian (`golang-go`,
//! `golang-golang-x-crypto-dev`), which `.ci/run` installs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::json;
use strongroom_external_secrets::hash::{created_by, data_hash, synced_resource_version};

const GOPATH: &str = "/usr/share/gocode";

const PROGRAM: &str = r#"package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/crypto/sha3"
)

type meta struct {
	annotations map[string]string
	labels      map[string]string
}

type input struct {
	Data        map[string][]byte `json:"data"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
}

func objectHash(v interface{}) string {
	return fmt.Sprintf("%x", sha3.Sum224([]byte(fmt.Sprintf("%+v", v))))
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var c input
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		fmt.Println(objectHash(c.Data), objectHash(meta{annotations: c.Annotations, labels: c.Labels}),
			fmt.Sprintf("%x", sha3.Sum224([]byte(c.Namespace+"/"+c.Name))))
	}
}
"#;

fn go_hashes(cases: &[serde_json::Value]) -> Vec<Vec<String>> {
    assert!(
        std::path::Path::new(GOPATH)
            .join("src/golang.org/x/crypto/sha3")
            .exists(),
        "install golang-go and golang-golang-x-crypto-dev (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("main.go");
    std::fs::write(&src, PROGRAM).unwrap();
    let binary = dir.path().join("hashes");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.path().join("cache"))
        .status()
        .expect("go is installed");
    assert!(status.success(), "the Go reference builds");
    let mut child = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for c in cases {
            writeln!(stdin, "{c}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

#[test]
fn hashes_match_upstreams_go() {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let datasets: Vec<BTreeMap<String, Vec<u8>>> = vec![
        BTreeMap::new(),
        BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
        BTreeMap::from([
            (
                "tls.crt".into(),
                b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec(),
            ),
            ("Z".into(), vec![]),
            ("a-b_c".into(), vec![0, 255, 128, 10]),
            ("config.json".into(), br#"{"a": "b c:d"}"#.to_vec()),
        ]),
    ];
    let metas: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = vec![
        (BTreeMap::new(), BTreeMap::new()),
        (
            BTreeMap::from([("app".into(), "web".into()), ("team".into(), "a b".into())]),
            BTreeMap::from([
                ("external-secrets.io/force-sync".into(), "1733000000".into()),
                ("note".into(), "x:y map[z]".into()),
            ]),
        ),
    ];
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for data in &datasets {
        for (labels, annotations) in &metas {
            let encoded: BTreeMap<&String, String> =
                data.iter().map(|(k, v)| (k, b64(v))).collect();
            cases.push(json!({
                "data": encoded, "labels": labels, "annotations": annotations,
                "namespace": "team-a", "name": "db-credentials",
            }));
            let version = synced_resource_version(1, Some(labels), Some(annotations));
            ours.push(vec![
                data_hash(data.iter().map(|(k, v)| (k, v.as_slice()))),
                version.trim_start_matches("1-").to_string(),
                created_by("team-a", "db-credentials"),
            ]);
        }
    }
    assert_eq!(go_hashes(&cases), ours);
}
