//! The workqueue metrics of a real kube-runtime controller on devcluster: six ConfigMaps due at
//! once for one worker queue up behind it (depth rises, then falls to 0 as they start), each
//! is added once, and a failed reconcile's retry is counted and queued again when due.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus::Registry;
use serde_json::json;
use strongroom_controller_kit::workqueue::WorkQueueMetrics;
use strongroom_devcluster::{DevCluster, Options};
use tokio_util::sync::CancellationToken;

const WORK: Duration = Duration::from_millis(250);

fn scrape(registry: &Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_queues_due_objects_and_retries_are_counted() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..6 {
        let name = if i == 0 {
            "fail".to_string()
        } else {
            format!("cm-{i}")
        };
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"wq": "test"}}
        }))
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let registry = Registry::new();
    let queues = WorkQueueMetrics::register(&registry).unwrap();
    let queue = queues.queue("configmap");
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("wq=test")),
    )
    .applied_objects();
    let stop = CancellationToken::new();
    let controller = Controller::for_stream(queue.triggers(stream), reader)
        .with_config(Config::default().concurrency(1))
        .graceful_shutdown_on(stop.clone().cancelled_owned());
    let failed_once = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn({
        let queue = queue.clone();
        async move {
            queue
                .run(
                    controller,
                    |cm: Arc<ConfigMap>, failed: Arc<AtomicBool>| async move {
                        tokio::time::sleep(WORK).await;
                        if cm.metadata.name.as_deref() == Some("fail")
                            && !failed.swap(true, Ordering::SeqCst)
                        {
                            return Err(std::io::Error::other("first attempt fails"));
                        }
                        Ok(Action::requeue(Duration::from_secs(3600)))
                    },
                    |_, _: &std::io::Error, _| Action::requeue(Duration::from_millis(300)),
                    failed_once,
                )
                .await
        }
    });

    // one worker, six objects due at once: the others wait their turn in the queue
    let started = Instant::now();
    let mut deepest = 0;
    let mut deepest_scraped = 0.0f64;
    while started.elapsed() < Duration::from_secs(20) {
        deepest = deepest.max(queue.depth());
        let text = scrape(&registry);
        deepest_scraped = deepest_scraped.max(value(
            &text,
            r#"workqueue_depth{controller="configmap",name="configmap",priority=""}"#,
        ));
        let done = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"workqueue_work_duration_seconds_count{controller="configmap",name="configmap"}"#,
                )
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if done >= 7.0 && queue.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        deepest >= 4,
        "at least four objects queued behind the busy worker: {deepest}"
    );
    assert!(deepest_scraped >= 4.0, "scraped depth {deepest_scraped}");
    let text = scrape(&registry);
    let series = |family: &str| {
        value(
            &text,
            &format!(r#"{family}{{controller="configmap",name="configmap"}}"#),
        )
    };
    assert_eq!(
        value(
            &text,
            r#"workqueue_depth{controller="configmap",name="configmap",priority=""}"#
        ),
        0.0,
        "idle: nothing queued"
    );
    // six objects plus the failed one's retry once it came due; the hour-long requeues are
    // not due, so not added
    assert_eq!(series("workqueue_adds_total"), 7.0);
    assert_eq!(series("workqueue_retries_total"), 1.0);
    assert_eq!(series("workqueue_work_duration_seconds_count"), 7.0);
    assert_eq!(series("workqueue_queue_duration_seconds_count"), 7.0);
    assert!(
        series("workqueue_queue_duration_seconds_sum") >= 10.0 * WORK.as_secs_f64(),
        "the waits behind the worker add up (0 + 1 + ... + 5 turns of 250 ms)"
    );
    assert_eq!(series("workqueue_unfinished_work_seconds"), 0.0);
    assert_eq!(series("workqueue_longest_running_processor_seconds"), 0.0);

    // the controller stops: its queue is emptied
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queue.depth(), 0);
}
