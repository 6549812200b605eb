//! The Go side of the differential template tests: finds (or installs) Debian's Go toolchain and
//! sprig, builds `reference/main.go` in GOPATH mode, and renders batches of cases with it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};

/// Debian packages the reference needs.
const PACKAGES: [&str; 3] = [
    "golang-go",
    "golang-github-masterminds-sprig-dev",
    "golang-k8s-sigs-yaml-dev",
];

/// Where Debian puts Go library sources.
const GOPATH: &str = "/usr/share/gocode";

/// Which upstream function map a case renders with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncMap {
    /// sealed-secrets: sprig minus env, expandenv, getHostByName; missing keys print `<no value>`.
    Sealed,
    /// external-secrets: the same plus toYaml/fromYaml, with `missingkey=error`.
    Eso,
}

/// One case for the reference: function map, template text, data.
pub type Case = (FuncMap, String, Vec<(String, String)>);

/// What a renderer made of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rendered text.
    Ok(String),
    /// The template failed (to parse or to run) with this message.
    Err(String),
}

fn have_reference_sources() -> bool {
    Path::new(GOPATH)
        .join("src/github.com/Masterminds/sprig/functions.go")
        .exists()
        && Path::new(GOPATH)
            .join("src/sigs.k8s.io/yaml/yaml.go")
            .exists()
}

fn go_binary() -> Option<PathBuf> {
    ["/usr/bin/go", "/usr/lib/go/bin/go"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Installs the Debian packages when they are missing and this runs as root with apt-get.
fn install() -> Result<(), String> {
    if go_binary().is_some() && have_reference_sources() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root || !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "the Go reference needs the Debian packages {} (not root or no apt-get here)",
            PACKAGES.join(" ")
        ));
    }
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(PACKAGES);
    let installed = quiet(&args) || (quiet(&["update"]) && quiet(&args));
    if !installed {
        return Err(format!("apt-get install {} failed", PACKAGES.join(" ")));
    }
    if go_binary().is_some() && have_reference_sources() {
        Ok(())
    } else {
        Err("the Debian packages installed but Go or sprig is still missing".into())
    }
}

/// The reference renderer, built once into the test's target directory.
pub struct Reference {
    binary: PathBuf,
}

impl Reference {
    /// Builds the reference (installing its packages when missing). `Err` says why it cannot.
    pub fn build() -> Result<Self, String> {
        install()?;
        let go = go_binary().ok_or("no go binary")?;
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gotemplate/reference");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gotemplate");
        std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
        let binary = out_dir.join("reference");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let fresh = match (modified(&binary), modified(&source.join("main.go"))) {
            (Some(b), Some(s)) => b >= s,
            _ => false,
        };
        if !fresh {
            // tests run in parallel processes (nextest): build aside, then rename into place
            let building = out_dir.join(format!("reference.{}", std::process::id()));
            let status = Command::new(go)
                .current_dir(&source)
                .args(["build", "-o"])
                .arg(&building)
                .arg(".")
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOCACHE", out_dir.join("gocache"))
                .env("GOFLAGS", "")
                .status()
                .map_err(|e| format!("go build: {e}"))?;
            if !status.success() {
                return Err(format!("go build of {} failed", source.display()));
            }
            std::fs::rename(&building, &binary).map_err(|e| e.to_string())?;
        }
        Ok(Self { binary })
    }

    /// Renders every case (function map, template, data) with Go, in order.
    pub fn render_all(&self, cases: &[Case]) -> Result<Vec<Outcome>, String> {
        self.render_all_with_delimiters(cases, "", "")
    }

    /// [`Reference::render_all`] with the action delimiters `left` and `right` (Go's
    /// `Delims`; empty for the defaults).
    pub fn render_all_with_delimiters(
        &self,
        cases: &[Case],
        left: &str,
        right: &str,
    ) -> Result<Vec<Outcome>, String> {
        let mut child = Command::new(&self.binary)
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running the reference: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let lines: Vec<String> = cases
            .iter()
            .enumerate()
            .map(|(id, (map, template, data))| {
                let data: serde_json::Map<String, Json> = data
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                    .collect();
                json!({
                    "id": id,
                    "map": if *map == FuncMap::Eso { "eso" } else { "sealed" },
                    "template": template,
                    "data": data,
                    "left": left,
                    "right": right,
                })
                .to_string()
            })
            .collect();
        let writer = std::thread::spawn(move || {
            for line in lines {
                if writeln!(stdin, "{line}").is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut out = Vec::with_capacity(cases.len());
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let v: Json = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            out.push(if v["ok"].as_bool() == Some(true) {
                Outcome::Ok(text("out"))
            } else {
                Outcome::Err(format!("{}: {}", text("phase"), text("err")))
            });
        }
        let _ = writer.join();
        let _ = child.wait();
        if out.len() != cases.len() {
            return Err(format!(
                "the reference answered {} of {} cases",
                out.len(),
                cases.len()
            ));
        }
        Ok(out)
    }
}
