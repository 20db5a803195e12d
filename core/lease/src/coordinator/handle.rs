//! A lease this worker holds, as the pipeline sees it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shardline_api::Checkpoint;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::{Lease, LeaseError};

/// A lease this worker holds. Cheap to clone (an `Arc` inside); every clone
/// refers to the same lease.
#[derive(Clone)]
pub struct LeaseHandle {
    inner: Arc<Inner>,
}

struct Inner {
    lease_key: String,
    shared: Arc<Shared>,
    /// The lease as last written by this worker.
    lease: Mutex<Lease>,
    /// Held for every conditional write, so renewals and checkpoints never
    /// race on `leaseCounter`.
    write_lock: tokio::sync::Mutex<()>,
    /// When the last successful write was *sent* (the other workers start
    /// their expiry clock no earlier than that).
    last_written: Mutex<Instant>,
    lost: CancellationToken,
    gone: AtomicBool,
    renewing: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a poisoned one is intact.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for LeaseHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHandle")
            .field("lease_key", &self.inner.lease_key)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl LeaseHandle {
    /// A handle for `lease`, just written (taken) at `sent`.
    pub(super) fn new(shared: Arc<Shared>, lease: Lease, sent: Instant) -> Self {
        LeaseHandle {
            inner: Arc::new(Inner {
                lease_key: lease.lease_key.clone(),
                shared,
                lease: Mutex::new(lease),
                write_lock: tokio::sync::Mutex::new(()),
                last_written: Mutex::new(sent),
                lost: CancellationToken::new(),
                gone: AtomicBool::new(false),
                renewing: AtomicBool::new(false),
            }),
        }
    }

    /// The lease key (shard id).
    pub fn lease_key(&self) -> &str {
        &self.inner.lease_key
    }

    /// The local copy of the lease as last written by this worker.
    pub fn snapshot(&self) -> Lease {
        lock(&self.inner.lease).clone()
    }

    /// The `leaseCounter` of the lease as last written by this worker
    /// (it grows with every renewal and checkpoint).
    pub fn lease_counter(&self) -> u64 {
        lock(&self.inner.lease).lease_counter
    }

    /// Cancelled the moment the lease is lost: a renewal or checkpoint
    /// lost its condition, it was not renewed within the failover time,
    /// it was released, or the coordinator shut down.
    pub fn lost(&self) -> CancellationToken {
        self.inner.lost.clone()
    }

    /// True once the lease is lost or released.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.is_cancelled()
    }

    /// Writes `checkpoint` (conditional on counter and owner), through the
    /// same per-lease lock the renewer uses.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the lease is lost (then [`Self::lost`] is
    /// cancelled); other store errors leave the lease held.
    ///
    /// # Cancel safety
    /// If cancelled, the checkpoint may or may not have been written; the
    /// next write finds out (it may then fail with `Lost`).
    pub async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<(), LeaseError> {
        self.checkpoint_with_state(checkpoint, None).await
    }

    /// [`Self::checkpoint`] that also stores the state of stateful
    /// transforms in the same conditional write (`None` keeps the stored
    /// state).
    ///
    /// # Errors
    /// As [`Self::checkpoint`].
    ///
    /// # Cancel safety
    /// As [`Self::checkpoint`].
    pub async fn checkpoint_with_state(&self, checkpoint: Checkpoint, transform_state: Option<String>) -> Result<(), LeaseError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = self.usable()?;
        let sent = Instant::now();
        let mut result = self
            .inner
            .shared
            .store
            .checkpoint(&current, &checkpoint, transform_state.as_deref())
            .await;
        if result.as_ref().is_err_and(LeaseError::is_lost) {
            result = self
                .reconcile(&current, result, |stored| {
                    stored.checkpoint == checkpoint
                        && (transform_state.is_none() || stored.transform_state == transform_state)
                })
                .await;
        }
        let written = self.after_write(result, sent, "checkpoint lost its condition")?;
        tracing::debug!(lease_key = %self.inner.lease_key, checkpoint = %written.checkpoint, "checkpointed");
        Ok(())
    }

    /// Stores the child shard ids in the lease (after the shard ended).
    ///
    /// # Errors
    /// As [`Self::checkpoint`].
    pub async fn set_child_shard_ids(&self, children: &[String]) -> Result<(), LeaseError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = self.usable()?;
        let sent = Instant::now();
        let result = self
            .inner
            .shared
            .store
            .update_child_shard_ids(&current, children)
            .await;
        self.after_write(result, sent, "child shard update lost its condition")?;
        Ok(())
    }

    /// Hands the lease back: an optional final checkpoint, then evict so
    /// another worker can take it at once. The handle is lost afterwards,
    /// whatever the outcome.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] when the lease was already lost; store errors of
    /// the checkpoint (then the lease is not evicted and expires instead)
    /// or of the eviction.
    pub async fn release(&self, final_checkpoint: Option<Checkpoint>) -> Result<(), LeaseError> {
        self.release_with_state(final_checkpoint, None).await
    }

    /// [`Self::release`] whose final checkpoint also stores the state of
    /// stateful transforms (`None` keeps the stored state).
    ///
    /// # Errors
    /// As [`Self::release`].
    pub async fn release_with_state(&self, final_checkpoint: Option<Checkpoint>, transform_state: Option<String>) -> Result<(), LeaseError> {
        let _guard = self.inner.write_lock.lock().await;
        let mut current = self.usable()?;
        let store = &self.inner.shared.store;
        if let Some(checkpoint) = final_checkpoint {
            match store.checkpoint(&current, &checkpoint, transform_state.as_deref()).await {
                Ok(written) => current = written,
                Err(e) => {
                    self.mark_lost("final checkpoint failed", e.is_lost());
                    return Err(e);
                }
            }
        }
        if !self.inner.shared.config.release_on_shutdown {
            // Left owned: it expires for the other workers after the
            // failover time, as the KCL 2.x's leases do.
            *lock(&self.inner.lease) = current;
            self.mark_lost("stopped; left to expire (release_on_shutdown = false)", false);
            return Ok(());
        }
        match store.evict(&current).await {
            Ok(written) => {
                *lock(&self.inner.lease) = written;
                self.mark_lost("released", false);
                Ok(())
            }
            Err(e) => {
                self.mark_lost("eviction failed", e.is_lost());
                Err(e)
            }
        }
    }

    /// Renews the lease once, giving up after the failover time. Called by
    /// the renewer only.
    pub(super) async fn renew(&self) {
        let failover = self.inner.shared.config.failover_time;
        let outcome = tokio::time::timeout(failover, self.renew_once()).await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) if e.is_lost() => {
                self.mark_lost(
                    "renewal lost its condition (another worker took the lease)",
                    true,
                );
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("renewal took longer than {}ms", failover.as_millis()),
        };
        if self.is_lost() {
            return;
        }
        metrics::counter!(
            "shardline_lease_renewal_failures_total",
            "pipeline" => self.inner.shared.config.pipeline.clone(),
            "shard_id" => self.inner.lease_key.clone()
        )
        .increment(1);
        tracing::warn!(lease_key = %self.inner.lease_key, worker_id = %self.inner.shared.config.worker_id, error = %failure, "lease renewal failed");
        self.expire_if_stale();
    }

    async fn renew_once(&self) -> Result<(), LeaseError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = match self.usable() {
            Ok(current) => current,
            Err(_) => return Ok(()),
        };
        let sent = Instant::now();
        let mut result = self.inner.shared.store.renew(&current).await;
        if result.as_ref().is_err_and(LeaseError::is_lost) {
            result = self.reconcile(&current, result, |_| true).await;
        }
        match result {
            Ok(written) => {
                self.record_write(written, sent);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// After a `Lost` answer: when the stored lease is exactly what our
    /// write would have produced (owner us, counter + 1, `matches`), the
    /// write did happen and only its answer was lost (an SDK retry of a
    /// timed-out request), so it counts as a success. No other worker can
    /// write our id as owner, so this cannot mistake someone else's write.
    async fn reconcile<F>(
        &self,
        expected: &Lease,
        lost: Result<Lease, LeaseError>,
        matches: F,
    ) -> Result<Lease, LeaseError>
    where
        F: FnOnce(&Lease) -> bool,
    {
        let worker_id = &self.inner.shared.config.worker_id;
        match self
            .inner
            .shared
            .store
            .get_lease(&self.inner.lease_key)
            .await
        {
            Ok(Some(stored))
                if stored.is_owned_by(worker_id)
                    && expected.is_owned_by(worker_id)
                    && stored.lease_counter == expected.lease_counter + 1
                    && matches(&stored) =>
            {
                tracing::debug!(lease_key = %self.inner.lease_key, worker_id = %worker_id, "conditional write had succeeded before its retry");
                Ok(stored)
            }
            _ => lost,
        }
    }

    /// Marks the lease lost when it was not written for the failover time;
    /// true when it is lost.
    pub(super) fn expire_if_stale(&self) -> bool {
        if self.is_lost() {
            return true;
        }
        let last = *lock(&self.inner.last_written);
        if last.elapsed() >= self.inner.shared.config.failover_time {
            self.mark_lost("not renewed within the failover time", true);
            return true;
        }
        false
    }

    /// Claims the right to start a renewal; false when one is running.
    pub(super) fn begin_renewal(&self) -> bool {
        !self.inner.renewing.swap(true, Ordering::SeqCst)
    }

    /// Ends a renewal started with [`Self::begin_renewal`].
    pub(super) fn end_renewal(&self) {
        self.inner.renewing.store(false, Ordering::SeqCst);
    }

    /// True when both handles refer to the same lease acquisition.
    pub(super) fn same_as(&self, other: &LeaseHandle) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The current lease, or `Lost` when it may no longer be used.
    fn usable(&self) -> Result<Lease, LeaseError> {
        if self.expire_if_stale() {
            return Err(LeaseError::lost(
                self.inner.shared.store.table_name(),
                &self.inner.lease_key,
                "the lease is no longer held by this worker",
            ));
        }
        Ok(self.snapshot())
    }

    fn after_write(
        &self,
        result: Result<Lease, LeaseError>,
        sent: Instant,
        lost_reason: &str,
    ) -> Result<Lease, LeaseError> {
        match result {
            Ok(written) => {
                self.record_write(written.clone(), sent);
                Ok(written)
            }
            Err(e) => {
                if e.is_lost() {
                    self.mark_lost(lost_reason, true);
                }
                Err(e)
            }
        }
    }

    fn record_write(&self, written: Lease, sent: Instant) {
        *lock(&self.inner.lease) = written;
        let mut last = lock(&self.inner.last_written);
        if sent > *last {
            *last = sent;
        }
    }

    /// Marks the handle lost (once): cancels [`Self::lost`] and forgets the
    /// lease. `counted` is false for a voluntary release.
    pub(super) fn mark_lost(&self, reason: &str, counted: bool) {
        if self.inner.gone.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.lost.cancel();
        let shared = &self.inner.shared;
        shared.remove_held(&self.inner.lease_key, self);
        let (key, worker) = (&self.inner.lease_key, &shared.config.worker_id);
        if counted {
            metrics::counter!(
                "shardline_lease_lost_total",
                "pipeline" => shared.config.pipeline.clone(),
                "shard_id" => key.clone()
            )
            .increment(1);
            tracing::warn!(lease_key = %key, worker_id = %worker, reason = %reason, "lost lease");
        } else {
            tracing::info!(lease_key = %key, worker_id = %worker, reason = %reason, "released lease");
        }
    }
}
