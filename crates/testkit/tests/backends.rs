//! The provider backends start, answer and stop: moto and OpenBao from `cargo xtask tools`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use strongroom_testkit::backends::{Moto, OpenBao};

#[tokio::test]
async fn moto_and_openbao_start_and_serve() {
    let (moto, bao) = tokio::join!(Moto::start(), OpenBao::start());
    let (code, body) = strongroom_testkit::http_get(&format!("{}/moto-api/", moto.endpoint)).await;
    assert_eq!(code, 200, "{body}");
    bao.cli(&["kv", "put", "secret/probe", "k=v"]);
    let out = bao.cli(&["kv", "get", "-field=k", "secret/probe"]);
    assert_eq!(out.trim(), "v");
    moto.reset().await;
}
