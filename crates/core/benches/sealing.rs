//! Seal and unseal one value with RSA-4096, the figures compared with `openssl speed rsa4096`
//! by `cargo xtask bench crypto`.
#![allow(missing_docs, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use strongroom_core::sealing::{
    KeyRing, PrivateSealingKey, SealTarget, SealingScope, os_rng, seal_bytes,
};

fn key() -> PrivateSealingKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sealing/kat-key-4096-pkcs8.pem"
    );
    let pem = std::fs::read_to_string(path).expect("fixture key");
    PrivateSealingKey::from_pem(&pem).expect("fixture key parses")
}

fn bench(c: &mut Criterion) {
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

    let mut group = c.benchmark_group("rsa4096");
    group.bench_function("seal", |b| {
        b.iter(|| seal_bytes(&mut os_rng(), &public, label, black_box(&plaintext)))
    });
    group.bench_function("unseal", |b| {
        b.iter(|| ring.unseal(black_box(&blob), target, None).expect("unseal"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
