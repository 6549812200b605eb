//! Seal and unseal one value with RSA-4096, the figures compared with `openssl speed rsa4096`
//! by `cargo xtask bench crypto`.
//!
//! A plain timed loop (no criterion): criterion's dependencies turn on features of crates the
//! controllers share (`either/use_std`, `zerocopy/derive`), so `cargo build` and `cargo test`
//! could not share one build. Each figure is the mean of whole seconds of back-to-back calls
//! after a warm-up, printed as `bench <name> mean_ns=<n> iterations=<n>` for xtask to read.
#![allow(missing_docs, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};
use strongroom_core::sealing::{
    KeyRing, PrivateSealingKey, SealTarget, SealingScope, os_rng, seal_bytes,
};

const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);

fn key() -> PrivateSealingKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sealing/kat-key-4096-pkcs8.pem"
    );
    let pem = std::fs::read_to_string(path).expect("fixture key");
    PrivateSealingKey::from_pem(&pem).expect("fixture key parses")
}

/// Runs `f` for [`WARM_UP`], then for at least [`MEASURE`], and prints the mean per call.
fn measure(name: &str, mut f: impl FnMut()) {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        f();
    }
    let start = Instant::now();
    let mut iterations: u32 = 0;
    while start.elapsed() < MEASURE {
        f();
        iterations += 1;
    }
    let mean = start.elapsed().as_nanos() / u128::from(iterations.max(1));
    println!("bench {name} mean_ns={mean} iterations={iterations}");
}

fn main() {
    // `cargo test --benches` runs this target with `--bench`-less arguments: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let key = key();
    let public = key.public().clone();
    let label = b"bench/secret";
    let plaintext = vec![7u8; 64];
    let target = SealTarget {
        scope: SealingScope::Strict,
        namespace: "bench",
        name: "secret",
    };
    let blob = seal_bytes(&mut os_rng(), &public, label, &plaintext).expect("seal");
    let mut ring = KeyRing::new();
    ring.insert(key);

    measure("rsa4096/seal", || {
        black_box(seal_bytes(&mut os_rng(), &public, label, black_box(&plaintext)).expect("seal"));
    });
    measure("rsa4096/unseal", || {
        black_box(ring.unseal(black_box(&blob), target, None).expect("unseal"));
    });
}
