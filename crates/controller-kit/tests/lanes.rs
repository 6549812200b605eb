//! A real kube-runtime controller on devcluster behind two lanes: with one slot kept busy by
//! thirty objects whose refreshes are always due, a new object is reconciled within a couple
//! of reconciles, not after the whole backlog; and at shutdown the objects still waiting end
//! without reconciling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus::Registry;
use serde_json::json;
use strongroom_controller_kit::lanes::{Lane, Lanes};
use strongroom_controller_kit::workqueue::{LaneGate, WorkQueueMetrics};
use strongroom_devcluster::{DevCluster, Options};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const WORK: Duration = Duration::from_millis(50);
const BACKLOG: usize = 30;

/// What the reconciles saw: when the new object was reconciled, and how many ran.
#[derive(Default)]
struct Seen {
    new_at: Mutex<Option<Instant>>,
    reconciles: AtomicUsize,
}

async fn create(api: &Api<ConfigMap>, name: &str, lane: &str) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"lanes": "test", "lane": lane}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

fn lane_of(cm: &ConfigMap) -> Lane {
    match cm.labels().get("lane").map(String::as_str) {
        Some("urgent") => Lane::Urgent,
        _ => Lane::Routine,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_object_goes_ahead_of_a_refresh_backlog() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..BACKLOG {
        create(&api, &format!("refresh-{i}"), "routine").await;
    }
    let registry = Registry::new();
    let queue = WorkQueueMetrics::register(&registry)
        .unwrap()
        .queue("configmap");
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("lanes=test")),
    )
    .applied_objects();
    let stop = CancellationToken::new();
    let controller = Controller::for_stream(queue.triggers(stream), reader)
        .with_config(Config::default().concurrency(0))
        .graceful_shutdown_on(stop.clone().cancelled_owned());
    let seen = Arc::new(Seen::default());
    let run = tokio::spawn({
        let (queue, seen, stop) = (queue.clone(), seen.clone(), stop.clone());
        async move {
            queue
                .run_in_lanes(
                    controller,
                    |cm: Arc<ConfigMap>, seen: Arc<Seen>| async move {
                        seen.reconciles.fetch_add(1, Ordering::SeqCst);
                        if lane_of(&cm) == Lane::Urgent {
                            seen.new_at.lock().await.get_or_insert_with(Instant::now);
                            return Ok::<_, std::io::Error>(Action::await_change());
                        }
                        tokio::time::sleep(WORK).await;
                        // due again at once: the backlog never drains
                        Ok(Action::requeue(Duration::from_millis(1)))
                    },
                    |_, _: &std::io::Error, _| Action::requeue(Duration::from_secs(1)),
                    seen,
                    LaneGate {
                        lanes: Lanes::new(1),
                        lane_of: Box::new(lane_of),
                        stop,
                    },
                )
                .await;
        }
    });

    // the backlog is running: thirty refreshes due, one slot
    while seen.reconciles.load(Ordering::SeqCst) < BACKLOG {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let created = Instant::now();
    create(&api, "new", "urgent").await;
    let waited = loop {
        if let Some(at) = *seen.new_at.lock().await {
            break at.duration_since(created);
        }
        assert!(
            created.elapsed() < Duration::from_secs(10),
            "the new object was never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // behind the backlog it would wait about BACKLOG × WORK = 1.5 s
    assert!(
        waited < WORK * 6,
        "the new object waited {waited:?} behind the refreshes"
    );

    // shutdown: the objects waiting for the slot end without reconciling
    let before = seen.reconciles.load(Ordering::SeqCst);
    let stopping = Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the controller stops without working through the waiting objects")
        .unwrap();
    assert!(
        stopping.elapsed() < WORK * 6,
        "stopping took {:?}",
        stopping.elapsed()
    );
    assert!(
        seen.reconciles.load(Ordering::SeqCst) <= before + 1,
        "waiting objects were reconciled after the stop"
    );
}
