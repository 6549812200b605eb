//! Two lanes in front of a controller's reconciles: a fixed number of reconciles run at once,
//! and a free slot goes to an urgent object (new or changed) before any routine one (a
//! periodic refresh), however long the routine ones have waited.
//!
//! kube-runtime's queue runs due objects in the order they became due, so with thousands of
//! refreshes due a new object would wait behind all of them. With lanes, kube-runtime starts
//! every due object at once (no concurrency limit of its own) and each waits here, cheaply,
//! before its reconcile future is even built.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which lane an object waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// New or changed objects: served first.
    Urgent,
    /// Periodic work (refreshes, drift checks).
    Routine,
}

/// The slots shared by a controller's reconciles.
#[derive(Clone)]
pub struct Lanes {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    free: usize,
    urgent: VecDeque<oneshot::Sender<()>>,
    routine: VecDeque<oneshot::Sender<()>>,
}

/// A held slot, given back when dropped.
pub struct Permit {
    state: Arc<Mutex<State>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        release(&self.state);
    }
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (free, urgent, routine) = self.counts();
        f.debug_struct("Lanes")
            .field("free", &free)
            .field("urgent_waiting", &urgent)
            .field("routine_waiting", &routine)
            .finish()
    }
}

impl Lanes {
    /// `slots` reconciles at once (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: slots.max(1),
                ..State::default()
            })),
        }
    }

    /// Waits for a slot in `lane`. Dropping the future before it resolves gives up the place
    /// in line (and a slot handed over meanwhile goes to the next in line).
    pub async fn acquire(&self, lane: Lane) -> Permit {
        let rx = {
            let mut state = lock(&self.state);
            if state.free > 0 && (lane == Lane::Urgent || state.urgent.is_empty()) {
                state.free -= 1;
                return Permit {
                    state: self.state.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            match lane {
                Lane::Urgent => state.urgent.push_back(tx),
                Lane::Routine => state.routine.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting {
            rx,
            state: self.state.clone(),
            granted: false,
        };
        // an error means the slot's sender went away without a slot: cannot happen while
        // `self` lives, and granting then errs on the side of progress
        let _ = (&mut waiting.rx).await;
        waiting.granted = true;
        Permit {
            state: self.state.clone(),
        }
    }

    /// Free slots, urgent and routine waiters.
    pub fn counts(&self) -> (usize, usize, usize) {
        let state = lock(&self.state);
        (state.free, state.urgent.len(), state.routine.len())
    }
}

/// A place in line; if dropped after a slot was handed to it, the slot goes on.
struct Waiting {
    rx: oneshot::Receiver<()>,
    state: Arc<Mutex<State>>,
    granted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.granted {
            self.rx.close();
            if self.rx.try_recv().is_ok() {
                release(&self.state);
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands a slot to the first live urgent waiter, else the first routine one, else frees it.
fn release(state: &Mutex<State>) {
    let mut state = lock(state);
    loop {
        let next = match state.urgent.pop_front() {
            Some(tx) => tx,
            None => match state.routine.pop_front() {
                Some(tx) => tx,
                None => {
                    state.free += 1;
                    return;
                }
            },
        };
        if next.send(()).is_ok() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn urgent_waiters_go_before_routine_ones() {
        let lanes = Lanes::new(1);
        let held = lanes.acquire(Lane::Routine).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, lane) in [
            ("r1", Lane::Routine),
            ("r2", Lane::Routine),
            ("u1", Lane::Urgent),
            ("r3", Lane::Routine),
            ("u2", Lane::Urgent),
        ] {
            let (lanes, order) = (lanes.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = lanes.acquire(lane).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // queue them in this order
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(lanes.counts(), (0, 2, 3));
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["u1", "u2", "r1", "r2", "r3"]);
        assert_eq!(lanes.counts(), (1, 0, 0));
    }

    #[tokio::test]
    async fn a_waiter_given_up_loses_no_slot() {
        let lanes = Lanes::new(1);
        let held = lanes.acquire(Lane::Urgent).await;
        // a waiter dropped before its turn
        let gone = tokio::time::timeout(Duration::from_millis(10), lanes.acquire(Lane::Urgent));
        assert!(gone.await.is_err());
        // a waiter whose slot arrives while nobody polls it, then dropped
        let mut late = Box::pin(lanes.acquire(Lane::Routine));
        assert!(futures::poll!(late.as_mut()).is_pending());
        drop(held);
        drop(late);
        assert_eq!(lanes.counts(), (1, 0, 0));
        let _again = tokio::time::timeout(Duration::from_secs(1), lanes.acquire(Lane::Routine))
            .await
            .expect("the slot came back");
    }

    #[tokio::test]
    async fn at_most_the_slots_run_at_once() {
        let lanes = Lanes::new(3);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (lanes, running, peak) = (lanes.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let lane = if i % 3 == 0 {
                        Lane::Urgent
                    } else {
                        Lane::Routine
                    };
                    let _permit = lanes.acquire(lane).await;
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(lanes.counts(), (3, 0, 0));
    }
}
