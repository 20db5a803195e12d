//! The renewer: every `failover_time / 3` it renews each held lease (each
//! on its own task, so one slow lease does not delay the others) and gives
//! up leases that could not be renewed for the failover time.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::Shared;

/// Runs until the coordinator shuts down, then marks every held lease lost.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(shared.config.failover_time / 3);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut renewals = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        while renewals.try_join_next().is_some() {}
        for handle in shared.held_handles() {
            if handle.expire_if_stale() || !handle.begin_renewal() {
                continue;
            }
            renewals.spawn(async move {
                handle.renew().await;
                handle.end_renewal();
            });
        }
    }
    renewals.abort_all();
    while renewals.join_next().await.is_some() {}
    shared.mark_all_lost("coordinator shut down");
}
