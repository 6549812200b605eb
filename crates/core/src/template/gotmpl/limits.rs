//! The resource limits a render runs under, visible to template functions while it runs.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Budgets for one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Iterations of one `range`.
    pub iterations: Option<usize>,
    /// Iterations of all `range`s together.
    pub total_iterations: Option<usize>,
    /// Bytes of output.
    pub output_bytes: Option<usize>,
    /// Bytes (or items) one function may return.
    pub function_output: Option<usize>,
    /// How long a render may run.
    pub deadline: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            iterations: Some(10_000),
            total_iterations: Some(1_000_000),
            output_bytes: Some(64 * 1024 * 1024),
            function_output: Some(1_000_000),
            deadline: None,
        }
    }
}

impl Limits {
    /// With an output limit.
    pub fn with_output_bytes(mut self, limit: usize) -> Self {
        self.output_bytes = Some(limit);
        self
    }
    /// With a deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

thread_local! {
    static ACTIVE: Cell<Limits> = Cell::new(Limits::default());
    static EXPIRES: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The limits of the render running on this thread (the defaults outside one).
pub fn active() -> Limits {
    ACTIVE.with(Cell::get)
}

/// Whether the running render is past its deadline.
pub(super) fn expired() -> bool {
    EXPIRES.with(Cell::get).is_some_and(|e| Instant::now() > e)
}

/// Makes `limits` the active ones until dropped.
pub(super) struct Active {
    previous: Limits,
    previous_expiry: Option<Instant>,
}

impl Active {
    pub(super) fn set(limits: Limits) -> Self {
        let previous = ACTIVE.with(|a| a.replace(limits));
        let expiry = limits.deadline.map(|d| Instant::now() + d);
        let previous_expiry = EXPIRES.with(|e| e.replace(expiry));
        Self {
            previous,
            previous_expiry,
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.previous));
        EXPIRES.with(|e| e.set(self.previous_expiry));
    }
}
