//! Ctrl-C and SIGTERM, for every command: `list`, `sync` and `verify` cancel their run on the
//! first signal and exit at once on the second ([`cancel_on_ctrl_c`]); `serve` shuts down
//! gracefully on the first ([`shutdown`]). SIGINT and SIGTERM are registered together, once,
//! so a signal arriving between two waits is not lost and both commands name it the same way.

use tokio_util::sync::CancellationToken;

use crate::logging;
use crate::progress::AbortOnDrop;

/// First Ctrl-C (or SIGTERM, as sent by systemd, Kubernetes or `kill`): cancel `cancel` (the
/// run stops cleanly: downloads and uploads aborted, manifest saved); a second one: exit 130
/// at once (what is left behind is cleaned up by the next run).
pub fn cancel_on_ctrl_c(cancel: CancellationToken, quiet: bool) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let Ok(mut signals) = Signals::new() else {
            tracing::warn!("cannot listen for Ctrl-C: it will stop dsfiles at once");
            return;
        };
        let name = signals.next().await;
        if !quiet {
            let line = format!(
                "{name}: cancelling, stopping cleanly; press Ctrl-C again to exit at once\n"
            );
            logging::write_stderr(line.as_bytes()).ok();
        }
        cancel.cancel();
        signals.next().await;
        std::process::exit(i32::from(crate::exit::Exit::Cancelled.code()));
    }))
}

/// SIGINT and, on Unix, SIGTERM, registered once so no signal between two waits is lost.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {})
    }

    /// Waits for the next signal and names it.
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM (for `dsfiles serve`); never, with an error
/// logged, if they cannot be listened for.
pub async fn shutdown() {
    match Signals::new() {
        Ok(mut signals) => {
            let name = signals.next().await;
            tracing::warn!("{name} received: shutting down");
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for Ctrl-C and SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}
