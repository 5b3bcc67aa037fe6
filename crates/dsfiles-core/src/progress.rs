//! Progress is an interface: the pipeline emits [`Event`]s, front ends render them.

use std::fmt;
use std::sync::Arc;

use crate::Event;

/// Receives progress events. Implementations must not block (they are called from the
/// download loop): count, forward to a bounded channel with `try_send`, or drop.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: &Event);
}

/// How the pipeline holds a [`ProgressSink`].
pub type Progress = Arc<dyn ProgressSink>;

/// A progress sink that ignores every event.
pub fn no_progress() -> Progress {
    Arc::new(NoProgress)
}

struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _event: &Event) {}
}

impl fmt::Debug for NoProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoProgress")
    }
}
