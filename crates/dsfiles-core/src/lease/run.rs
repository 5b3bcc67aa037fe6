//! [`under_lease`]: a run that writes while holding a lease, the one way both `sync` and
//! `seda` do it — the lease taken first, renewed next to the run (one `select!`, no detached
//! task), released at its end; the run writes only through a [`FencedSink`], so a run that
//! loses its lease stops writing before anyone may take it over.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Fence, FencedSink, LeaseOptions, LeaseScope, acquire, keep};
use crate::Error;
use crate::sink::Sink;

/// What a run under a lease returned, and whether it lost the lease meanwhile (then it was
/// cancelled and its writes refused from that moment; the lease is not released: it is
/// another writer's now).
pub(crate) struct Leased<T> {
    pub result: Result<T, Error>,
    pub lost: bool,
}

/// Takes the lease of `scope` in `sink` ([`Error::DestinationBusy`] when another live writer
/// holds it), then runs `body` with the fenced sink and a child of `cancel`, which is
/// cancelled if the lease is lost.
pub(crate) async fn under_lease<T, Fut>(
    sink: Arc<dyn Sink>,
    scope: LeaseScope,
    opts: &LeaseOptions,
    cancel: &CancellationToken,
    body: impl FnOnce(Arc<dyn Sink>, CancellationToken) -> Fut,
) -> Result<Leased<T>, Error>
where
    Fut: Future<Output = Result<T, Error>>,
{
    let mut held = acquire(&sink, scope, opts).await?;
    let fence = Fence::default();
    let fenced: Arc<dyn Sink> = Arc::new(FencedSink::new(sink, fence.clone()));
    let run_cancel = cancel.child_token();
    let result = {
        let body = body(fenced, run_cancel.clone());
        let keeper = keep(&mut held, opts.timing, &fence);
        tokio::pin!(body, keeper);
        tokio::select! {
            result = &mut body => result,
            () = &mut keeper => {
                // Fenced: every write now fails; stop the run and let it wind up.
                run_cancel.cancel();
                body.await
            }
        }
    };
    let lost = fence.is_tripped();
    if !lost {
        held.release().await;
    }
    Ok(Leased { result, lost })
}
