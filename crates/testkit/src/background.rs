//! A test server's own thread and Tokio runtime, so a test that blocks (or runs on another
//! runtime) never stalls the server it talks to.

use std::future::Future;

/// Runs `serve` on a new thread with a one-worker runtime until the test process ends.
/// `serve` gets a sender for the value the caller waits for (typically the bound address),
/// and this returns that value once `serve` has sent it.
pub fn serve_on_own_thread<T, F, Fut>(serve: F) -> T
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a test server's runtime");
        rt.block_on(serve(tx));
    });
    rx.recv().expect("the test server did not start")
}
