//! Leader election through a `coordination.k8s.io/v1` Lease (kube 5 ships no helper).
//!
//! Acquire and renew are replaces guarded by the Lease's `resourceVersion` (optimistic
//! concurrency): of two candidates writing at once, one gets a conflict.
//!
//! Timing uses only the local monotonic clock, never a comparison of a remote timestamp with
//! the local wall clock, so clock skew between nodes cannot make two processes lead at once:
//!
//! - A standby remembers the Lease record it observed (`resourceVersion` and spec) and the local
//!   [`Instant`] it first saw it. It takes over a held Lease only once that record has stayed
//!   unchanged for the record's `leaseDurationSeconds` on its own clock ([`takeover`]); the
//!   `renewTime` written by the holder is informative only. A Lease without a holder (never
//!   held, or released) is taken at once.
//! - The holder measures its fencing deadline from the instant *before* the request that wrote
//!   its latest `renewTime` was sent (the acquisition request, then each successful renewal).
//!   Every renewal request is raced against that deadline, so a hung API call cannot keep a
//!   stale leader acting: [`Leadership::hold`] returns once the deadline passes
//!   ([`fencing_period`]: two thirds of `leaseDurationSeconds`, well before any standby may
//!   take over).
//!
//! The standby's observation instant is taken *after* the read that returned the record, which
//! is after the holder sent the write that produced it; the holder stops at
//! `sent + ⅔·duration` while a standby starts no earlier than `observed + duration`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

/// Fraction of `leaseDurationSeconds` after its last renewal request was sent for which the
/// holder keeps acting: the rest is the margin before a standby may take over.
const FENCE_FRACTION: f64 = 0.66;

/// Conflicts on renewal (someone else wrote the Lease while it is still ours) re-read and retry
/// the guarded replace at most this many times per renewal round.
const MAX_RENEW_CONFLICTS: u32 = 3;

/// Lease parameters.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// `holderIdentity` written by this process.
    pub identity: String,
    /// `leaseDurationSeconds`.
    pub duration: Duration,
    /// How often the holder renews and a standby retries.
    pub retry: Duration,
}

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {0} was taken over by {1}")]
    Lost(String, String),
    #[error("could not renew lease {name} before it lapsed: {source}")]
    RenewFailed {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// No renewal completed within the fencing period (e.g. a request hung): this process must
    /// stop acting, a standby may take over soon.
    #[error("could not renew lease {name} within {fence:?} of the last renewal: renewal timed out")]
    Expired { name: String, fence: Duration },
    /// The Lease object disappeared under the holder: a standby may create it at once.
    #[error("lease {0} was deleted")]
    Deleted(String),
}

/// Whether `identity` may take the lease now by the remote clock: free, already ours, or
/// `renewTime + leaseDurationSeconds` before `now`.
///
/// Informative only (logging): it compares a remote timestamp with the local wall clock, so it
/// is wrong under clock skew. Takeover decisions use [`takeover`].
pub fn may_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(0));
    now > renewed.0 + jiff::SignedDuration::from_secs(duration)
}

/// `leaseDurationSeconds` written for `duration`: whole seconds, at least one.
fn lease_seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1)
}

/// The spec after `identity` acquires or renews.
///
/// `leaseTransitions` counts changes of holder, like client-go: it is incremented whenever the
/// new holder differs from the holder recorded in `spec`, including when the recorded holder is
/// none because the previous one released the lease (even if that was `identity` itself). It is
/// kept on a renewal by the recorded holder, and starts at 0 when the Lease is created
/// (`spec` is `None`).
pub fn claimed(
    spec: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let previous = spec.cloned().unwrap_or_default();
    let ours = previous.holder_identity.as_deref() == Some(identity);
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(lease_seconds(duration)),
        acquire_time: if ours {
            previous.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours || spec.is_none() {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..previous
    }
}

/// A Lease record as a standby observed it, and since when (local monotonic clock) it has been
/// seen unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    resource_version: Option<String>,
    spec: Option<LeaseSpec>,
    since: Instant,
}

impl Observation {
    /// Records `lease` as read at `now` (an instant taken after the read returned). Keeps the
    /// earlier instant of `previous` when neither the `resourceVersion` nor the spec changed:
    /// any write, a renewal in particular, restarts the clock.
    pub fn update(previous: Option<Observation>, lease: &Lease, now: Instant) -> Observation {
        let resource_version = lease.metadata.resource_version.clone();
        let spec = lease.spec.clone();
        match previous {
            Some(p) if p.resource_version == resource_version && p.spec == spec => p,
            _ => Observation {
                resource_version,
                spec,
                since: now,
            },
        }
    }

    /// When this record was first seen.
    pub fn since(&self) -> Instant {
        self.since
    }
}

/// A standby's decision about an existing Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// No holder: never held, or released. Take it now.
    Free,
    /// Already recorded as held by this identity (e.g. restarted with the same identity).
    Ours,
    /// Another holder's record stayed unchanged for a whole `leaseDurationSeconds` on the local
    /// monotonic clock: the holder has stopped renewing (and fenced itself); take over.
    Lapsed,
    /// Another holder, seen renewing recently: the record must stay unchanged this much longer.
    Wait { remaining: Duration },
}

/// Whether to take `lease` over, given `observation` of it (from [`Observation::update`] with
/// this very `lease`) and the local instant `now`. `renewTime` plays no part: only how long the
/// record has stayed unchanged on our own clock. A record without `leaseDurationSeconds` is
/// given `config.duration`.
pub fn takeover(
    lease: &Lease,
    observation: &Observation,
    config: &LeaseConfig,
    now: Instant,
) -> Takeover {
    let Some(spec) = lease.spec.as_ref() else {
        return Takeover::Free;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Takeover::Free;
    }
    if holder == config.identity {
        return Takeover::Ours;
    }
    let duration = match spec.lease_duration_seconds {
        Some(s) if s > 0 => Duration::from_secs(u64::from(s.unsigned_abs())),
        _ => config.duration,
    };
    let unchanged = now.saturating_duration_since(observation.since);
    if unchanged >= duration {
        Takeover::Lapsed
    } else {
        Takeover::Wait {
            remaining: duration - unchanged,
        }
    }
}

/// How long after the instant its last successful renewal request was sent the holder keeps
/// acting: 0.66 (`FENCE_FRACTION`) of the `leaseDurationSeconds` it writes.
pub fn fencing_period(duration: Duration) -> Duration {
    Duration::from_secs(u64::from(lease_seconds(duration).unsigned_abs())).mul_f64(FENCE_FRACTION)
}

/// The instant after which the holder must stop acting, unless a renewal sent later succeeded.
pub fn fencing_deadline(last_renewal: Instant, duration: Duration) -> Instant {
    last_renewal + fencing_period(duration)
}

/// The holder's renewal period: `retry`, capped at half the fencing period so that at least
/// two attempts fit in it.
pub fn renew_period(config: &LeaseConfig) -> Duration {
    config.retry.min(fencing_period(config.duration) / 2)
}

/// What the holder does after its guarded replace hit a conflict and it re-read the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterConflict {
    /// Still recorded as ours (someone else wrote another field): retry the replace on the
    /// fresh record. Nothing was written for us, so this is not a renewal.
    Retry,
    /// Someone else holds it now (empty when released by someone else).
    Lost(String),
}

/// Decision on a conflict, from the Lease re-read after it.
pub fn after_conflict(fresh: &Lease, identity: &str) -> AfterConflict {
    let holder = fresh
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if holder == identity {
        AfterConflict::Retry
    } else {
        AfterConflict::Lost(holder)
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// A held lease.
pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
    current: Lease,
    /// Local instant before the acquisition request was sent.
    acquired_at: Instant,
    /// Local instant before the request that wrote the latest `renewTime` was sent: the
    /// acquisition, then each successful renewal.
    last_renewal: Instant,
}

/// Waits until this process holds the lease.
pub async fn acquire(client: Client, config: LeaseConfig) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = None;
    // Bounds one attempt so a hung request cannot stall the standby forever (liveness only: a
    // write that lands after we gave up shows up as `Takeover::Ours` on the next attempt).
    let attempt_timeout = config.duration.max(config.retry);
    loop {
        match tokio::time::timeout(attempt_timeout, try_acquire(&api, &config, &mut observed)).await
        {
            Ok(Ok(Some((current, sent)))) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                return Leadership {
                    api,
                    config,
                    current,
                    acquired_at: sent,
                    last_renewal: sent,
                };
            }
            Ok(Ok(None)) => tracing::debug!(lease = %config.name, "lease held by another process"),
            Ok(Err(e)) => {
                tracing::warn!(lease = %config.name, error = %e, "lease acquisition failed");
            }
            Err(_) => {
                tracing::warn!(lease = %config.name, timeout = ?attempt_timeout, "lease acquisition timed out");
            }
        }
        tokio::time::sleep(config.retry).await;
    }
}

/// One acquisition attempt: the acquired Lease and the instant before the request that wrote it
/// was sent, or `None` when it is (still) held by someone else.
async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observation>,
) -> Result<Option<(Lease, Instant)>, kube::Error> {
    match api.get_opt(&config.name).await? {
        None => {
            *observed = None;
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(claimed(
                    None,
                    &config.identity,
                    config.duration,
                    Timestamp::now(),
                )),
            };
            let sent = Instant::now();
            match api.create(&PostParams::default(), &lease).await {
                Ok(l) => Ok(Some((l, sent))),
                Err(e) if is_status(&e, 409) => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some(existing) => {
            let now = Instant::now();
            let observation = Observation::update(observed.take(), &existing, now);
            let decision = takeover(&existing, &observation, config, now);
            *observed = Some(observation);
            match decision {
                Takeover::Wait { remaining } => {
                    tracing::debug!(
                        lease = %config.name,
                        remaining = ?remaining,
                        looks_expired = may_acquire(existing.spec.as_ref(), &config.identity, Timestamp::now()),
                        "lease held by another process; waiting for it to stay unrenewed"
                    );
                    return Ok(None);
                }
                Takeover::Free | Takeover::Ours | Takeover::Lapsed => {}
            }
            let mut next = existing.clone();
            next.spec = Some(claimed(
                existing.spec.as_ref(),
                &config.identity,
                config.duration,
                Timestamp::now(),
            ));
            let sent = Instant::now();
            match api
                .replace(&config.name, &PostParams::default(), &next)
                .await
            {
                Ok(l) => Ok(Some((l, sent))),
                Err(e) if is_status(&e, 409) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

impl Leadership {
    /// The local instant before the acquisition request was sent.
    pub fn acquired_at(&self) -> Instant {
        self.acquired_at
    }

    /// The instant after which this process must no longer act as leader unless [`hold`]
    /// renews before then. [`hold`] returns by this instant at the latest.
    ///
    /// [`hold`]: Leadership::hold
    pub fn fencing_deadline(&self) -> Instant {
        fencing_deadline(self.last_renewal, self.config.duration)
    }

    /// Renews until leadership is lost; only returns with the reason.
    ///
    /// Returns no later than the fencing deadline (measured from the last successful renewal,
    /// or from the acquisition): every renewal request is raced against it. Call it promptly
    /// after [`acquire`]: time spent before counts against the deadline.
    pub async fn hold(&mut self) -> LeaseError {
        let fence = fencing_period(self.config.duration);
        let period = renew_period(&self.config);
        let mut last_error: Option<kube::Error> = None;
        loop {
            let deadline = self.fencing_deadline();
            tokio::time::sleep_until((Instant::now() + period).min(deadline)).await;
            if Instant::now() >= deadline {
                return self.expired(last_error, fence);
            }
            match tokio::time::timeout_at(deadline, self.renew()).await {
                Ok(Ok(sent)) => {
                    self.last_renewal = self.last_renewal.max(sent);
                    last_error = None;
                }
                Ok(Err(RenewError::Lost(holder))) => {
                    return LeaseError::Lost(self.config.name.clone(), holder);
                }
                Ok(Err(RenewError::Deleted)) => {
                    return LeaseError::Deleted(self.config.name.clone());
                }
                Ok(Err(RenewError::Kube(e))) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "lease renewal failed");
                    last_error = Some(e);
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, "lease renewal did not complete before the fencing deadline");
                    return self.expired(None, fence);
                }
            }
        }
    }

    fn expired(&self, last_error: Option<kube::Error>, fence: Duration) -> LeaseError {
        match last_error {
            Some(source) => LeaseError::RenewFailed {
                name: self.config.name.clone(),
                source,
            },
            None => LeaseError::Expired {
                name: self.config.name.clone(),
                fence,
            },
        }
    }

    /// One renewal round: a replace guarded by the last seen `resourceVersion`; on a conflict
    /// while the Lease is still ours, re-read and retry (a conflict wrote nothing for us, so it is
    /// no renewal). Returns the local instant before the request that wrote the renewal was sent.
    async fn renew(&mut self) -> Result<Instant, RenewError> {
        let mut conflicts = 0;
        loop {
            let mut next = self.current.clone();
            next.spec = Some(claimed(
                self.current.spec.as_ref(),
                &self.config.identity,
                self.config.duration,
                Timestamp::now(),
            ));
            let sent = Instant::now();
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &next)
                .await
            {
                Ok(l) => {
                    self.current = l;
                    return Ok(sent);
                }
                Err(e) if is_status(&e, 404) => return Err(RenewError::Deleted),
                Err(e) if is_status(&e, 409) => {
                    let fresh = match self.api.get_opt(&self.config.name).await {
                        Ok(Some(fresh)) => fresh,
                        Ok(None) => return Err(RenewError::Deleted),
                        Err(e) => return Err(RenewError::Kube(e)),
                    };
                    match after_conflict(&fresh, &self.config.identity) {
                        AfterConflict::Lost(holder) => return Err(RenewError::Lost(holder)),
                        AfterConflict::Retry => {
                            self.current = fresh;
                            conflicts += 1;
                            if conflicts >= MAX_RENEW_CONFLICTS {
                                return Err(RenewError::Kube(e));
                            }
                        }
                    }
                }
                Err(e) => return Err(RenewError::Kube(e)),
            }
        }
    }

    /// Gives the lease up on a graceful shutdown so a standby takes over at once.
    ///
    /// The replace is guarded: if someone else took the lease meanwhile, it is left alone. On a
    /// conflict while still ours (e.g. [`hold`](Leadership::hold) was cancelled mid-renewal),
    /// the lease is re-read and the release retried once.
    pub async fn release(mut self) {
        for _ in 0..2 {
            let mut next = self.current.clone();
            if let Some(spec) = next.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
                spec.acquire_time = None;
            }
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &next)
                .await
            {
                Ok(l) => {
                    self.current = l;
                    return;
                }
                Err(e) if is_status(&e, 409) => match self.api.get_opt(&self.config.name).await {
                    Ok(Some(fresh))
                        if after_conflict(&fresh, &self.config.identity)
                            == AfterConflict::Retry =>
                    {
                        self.current = fresh;
                    }
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not release the lease");
                        return;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not release the lease");
                    return;
                }
            }
        }
        tracing::warn!("could not release the lease: it kept changing");
    }
}

#[derive(Debug)]
enum RenewError {
    Lost(String),
    Deleted,
    Kube(kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn spec(holder: Option<&str>, renewed: Option<i64>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(t(s))),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    fn lease(rv: &str, spec: Option<LeaseSpec>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".to_owned()),
                namespace: Some("ns".to_owned()),
                resource_version: Some(rv.to_owned()),
                ..Default::default()
            },
            spec,
        }
    }

    fn config(identity: &str, duration: Duration, retry: Duration) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".to_owned(),
            name: "l".to_owned(),
            identity: identity.to_owned(),
            duration,
            retry,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn wall_clock_view_is_informative() {
        assert!(may_acquire(None, "me", t(100)), "no lease");
        assert!(
            may_acquire(Some(&spec(None, None, 15)), "me", t(100)),
            "free"
        );
        assert!(
            may_acquire(Some(&spec(Some("me"), Some(99), 15)), "me", t(100)),
            "ours"
        );
        assert!(
            !may_acquire(Some(&spec(Some("other"), Some(90), 15)), "me", t(100)),
            "held"
        );
        assert!(
            !may_acquire(Some(&spec(Some("other"), Some(85), 15)), "me", t(100)),
            "exactly at lapse"
        );
        assert!(
            may_acquire(Some(&spec(Some("other"), Some(84), 15)), "me", t(100)),
            "lapsed"
        );
    }

    #[test]
    fn free_and_own_leases_are_taken_at_once() {
        let c = config("me", secs(15), secs(2));
        let now = Instant::now();
        for (l, want) in [
            (lease("1", None), Takeover::Free),
            (lease("1", Some(spec(None, None, 15))), Takeover::Free),
            (
                lease("1", Some(spec(Some(""), Some(1), 15))),
                Takeover::Free,
            ),
            (
                lease("1", Some(spec(Some("me"), Some(1), 15))),
                Takeover::Ours,
            ),
        ] {
            let o = Observation::update(None, &l, now);
            assert_eq!(takeover(&l, &o, &c, now), want, "{l:?}");
        }
    }

    #[test]
    fn held_lease_is_taken_only_after_staying_unchanged_for_its_duration() {
        let c = config("me", secs(30), secs(2));
        let start = Instant::now();
        let l = lease("7", Some(spec(Some("other"), Some(100), 15)));
        let o = Observation::update(None, &l, start);
        assert_eq!(
            takeover(&l, &o, &c, start),
            Takeover::Wait {
                remaining: secs(15)
            },
            "the record's leaseDurationSeconds, not ours"
        );
        let o = Observation::update(Some(o), &l, start + secs(10));
        assert_eq!(o.since(), start, "unchanged record keeps the first instant");
        assert_eq!(
            takeover(&l, &o, &c, start + secs(10)),
            Takeover::Wait { remaining: secs(5) }
        );
        assert_eq!(
            takeover(&l, &o, &c, start + secs(15)),
            Takeover::Lapsed,
            "exactly a duration"
        );
        let mut no_duration = spec(Some("other"), Some(100), 15);
        no_duration.lease_duration_seconds = None;
        let l = lease("7", Some(no_duration));
        let o = Observation::update(None, &l, start);
        assert_eq!(
            takeover(&l, &o, &c, start + secs(20)),
            Takeover::Wait {
                remaining: secs(10)
            },
            "falls back to our duration"
        );
    }

    #[test]
    fn takeover_ignores_remote_clock() {
        // The holder's clock is an hour ahead, or an hour behind: only our observation counts.
        let c = config("me", secs(15), secs(2));
        let start = Instant::now();
        for renewed in [-3600, 3600] {
            let l = lease(
                "3",
                Some(spec(
                    Some("other"),
                    Some(Timestamp::now().as_second() + renewed),
                    15,
                )),
            );
            let o = Observation::update(None, &l, start);
            assert!(
                matches!(
                    takeover(&l, &o, &c, start + secs(14)),
                    Takeover::Wait { .. }
                ),
                "skew {renewed}"
            );
            assert_eq!(
                takeover(&l, &o, &c, start + secs(15)),
                Takeover::Lapsed,
                "skew {renewed}"
            );
        }
    }

    #[test]
    fn any_change_of_the_record_restarts_the_observation() {
        let start = Instant::now();
        let later = start + secs(5);
        let l = lease("1", Some(spec(Some("other"), Some(100), 15)));
        let o = Observation::update(None, &l, start);
        let renewed = lease("2", Some(spec(Some("other"), Some(102), 15)));
        assert_eq!(
            Observation::update(Some(o.clone()), &renewed, later).since(),
            later
        );
        let rv_only = lease("2", Some(spec(Some("other"), Some(100), 15)));
        assert_eq!(
            Observation::update(Some(o.clone()), &rv_only, later).since(),
            later
        );
        let spec_only = lease("1", Some(spec(Some("other"), Some(101), 15)));
        assert_eq!(
            Observation::update(Some(o.clone()), &spec_only, later).since(),
            later
        );
        let new_holder = lease("1", Some(spec(Some("third"), Some(100), 15)));
        assert_eq!(
            Observation::update(Some(o.clone()), &new_holder, later).since(),
            later
        );
        assert_eq!(Observation::update(Some(o), &l, later).since(), start);
    }

    #[test]
    fn transitions_count_every_change_of_holder() {
        let d = secs(15);
        let first = claimed(None, "a", d, t(10));
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_duration_seconds, Some(15));
        assert_eq!(first.lease_transitions, Some(0), "creation");
        let renewed = claimed(Some(&first), "a", d, t(20));
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(t(20))));
        assert_eq!(renewed.lease_transitions, Some(0), "renewal");
        let taken = claimed(Some(&renewed), "b", d, t(40));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(40))));
        assert_eq!(taken.lease_transitions, Some(1), "takeover");
        let released = LeaseSpec {
            holder_identity: None,
            renew_time: None,
            acquire_time: None,
            ..taken
        };
        let after_release = claimed(Some(&released), "c", d, t(50));
        assert_eq!(after_release.lease_transitions, Some(2), "after a release");
        assert_eq!(after_release.acquire_time, Some(MicroTime(t(50))));
        let same_after_release = claimed(Some(&released), "b", d, t(50));
        assert_eq!(
            same_after_release.lease_transitions,
            Some(2),
            "the releaser itself, after its release"
        );
        let empty_holder = LeaseSpec {
            holder_identity: Some(String::new()),
            ..released
        };
        assert_eq!(
            claimed(Some(&empty_holder), "c", d, t(60)).lease_transitions,
            Some(2)
        );
        assert_eq!(
            claimed(Some(&LeaseSpec::default()), "a", d, t(60)).lease_transitions,
            Some(1),
            "an existing record without holder"
        );
    }

    #[test]
    fn fence_is_two_thirds_of_the_written_duration() {
        assert_eq!(fencing_period(secs(15)), secs(15).mul_f64(0.66));
        assert_eq!(
            fencing_period(Duration::from_millis(1500)),
            secs(1).mul_f64(0.66),
            "whole seconds are written"
        );
        assert_eq!(
            fencing_period(Duration::from_millis(10)),
            secs(1).mul_f64(0.66),
            "at least one second is written"
        );
        let at = Instant::now();
        assert_eq!(fencing_deadline(at, secs(15)), at + secs(15).mul_f64(0.66));
        assert_eq!(renew_period(&config("me", secs(15), secs(2))), secs(2));
        assert_eq!(
            renew_period(&config("me", secs(3), secs(2))),
            secs(3).mul_f64(0.66) / 2,
            "capped so two attempts fit before the fence"
        );
    }

    #[test]
    fn conflict_is_retried_only_while_still_ours() {
        let ours = lease("5", Some(spec(Some("me"), Some(1), 15)));
        assert_eq!(after_conflict(&ours, "me"), AfterConflict::Retry);
        let theirs = lease("5", Some(spec(Some("other"), Some(1), 15)));
        assert_eq!(
            after_conflict(&theirs, "me"),
            AfterConflict::Lost("other".to_owned())
        );
        let released = lease("5", Some(spec(None, None, 15)));
        assert_eq!(
            after_conflict(&released, "me"),
            AfterConflict::Lost(String::new())
        );
        assert_eq!(
            after_conflict(&lease("5", None), "me"),
            AfterConflict::Lost(String::new())
        );
    }

    /// An in-process API server for one Lease, served through a `kube::Client` built on an axum
    /// `Router` (a tower `Service`).
    mod fake {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use axum::body::{Body, to_bytes};
        use axum::extract::Request;
        use axum::http::{Method, StatusCode};
        use axum::response::{IntoResponse, Response};
        use k8s_openapi::api::coordination::v1::Lease;

        #[derive(Default)]
        pub struct State {
            pub lease: Option<Lease>,
            pub rv: u64,
            /// PUTs never answer.
            pub stall_puts: bool,
            /// The next PUTs first see another writer bump the resourceVersion (holder kept).
            pub bump_before_put: u32,
            /// The next PUTs first see another writer take the lease.
            pub steal_before_put: Option<String>,
            /// Writes are applied at once but answered this late.
            pub write_delay: Duration,
            pub puts: u32,
            pub gets: u32,
        }

        impl State {
            pub fn store(&mut self, mut lease: Lease) -> Lease {
                self.rv += 1;
                lease.metadata.resource_version = Some(self.rv.to_string());
                self.lease = Some(lease.clone());
                lease
            }
        }

        fn status(code: StatusCode, reason: &str) -> Response {
            let body = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": reason, "reason": reason, "code": code.as_u16(),
            });
            (code, axum::Json(body)).into_response()
        }

        async fn handle(state: Arc<Mutex<State>>, req: Request) -> Response {
            let method = req.method().clone();
            let bytes = to_bytes(req.into_body(), usize::MAX).await.unwrap();
            if method == Method::PUT && state.lock().unwrap().stall_puts {
                state.lock().unwrap().puts += 1;
                std::future::pending::<()>().await;
            }
            let (response, delay) = {
                let mut s = state.lock().unwrap();
                let delay = if method == Method::GET {
                    Duration::ZERO
                } else {
                    s.write_delay
                };
                (respond(&mut s, &method, &bytes), delay)
            };
            // The write is applied at once; only its answer is late.
            tokio::time::sleep(delay).await;
            response
        }

        fn respond(s: &mut State, method: &Method, bytes: &[u8]) -> Response {
            match *method {
                Method::GET => {
                    s.gets += 1;
                    match s.lease.clone() {
                        Some(l) => axum::Json(l).into_response(),
                        None => status(StatusCode::NOT_FOUND, "NotFound"),
                    }
                }
                Method::POST => {
                    if s.lease.is_some() {
                        return status(StatusCode::CONFLICT, "AlreadyExists");
                    }
                    let l: Lease = serde_json::from_slice(bytes).unwrap();
                    axum::Json(s.store(l)).into_response()
                }
                Method::PUT => {
                    s.puts += 1;
                    if s.bump_before_put > 0 {
                        s.bump_before_put -= 1;
                        let current = s.lease.clone().unwrap();
                        s.store(current);
                    }
                    if let Some(thief) = s.steal_before_put.take() {
                        let mut current = s.lease.clone().unwrap();
                        current.spec.as_mut().unwrap().holder_identity = Some(thief);
                        s.store(current);
                    }
                    let l: Lease = serde_json::from_slice(bytes).unwrap();
                    let Some(current) = s.lease.as_ref() else {
                        return status(StatusCode::NOT_FOUND, "NotFound");
                    };
                    if l.metadata.resource_version != current.metadata.resource_version {
                        return status(StatusCode::CONFLICT, "Conflict");
                    }
                    axum::Json(s.store(l)).into_response()
                }
                _ => (StatusCode::METHOD_NOT_ALLOWED, Body::empty()).into_response(),
            }
        }

        pub fn client(state: Arc<Mutex<State>>) -> kube::Client {
            let router =
                axum::Router::new().fallback(move |req: Request| handle(state.clone(), req));
            kube::Client::new(router, "ns")
        }
    }

    use std::sync::{Arc, Mutex};

    fn fake() -> (Arc<Mutex<fake::State>>, Client) {
        let state = Arc::new(Mutex::new(fake::State::default()));
        let client = fake::client(state.clone());
        (state, client)
    }

    /// Timer and scheduling lateness tolerated by the async tests on a loaded 2-core machine.
    /// The upper bounds only tell "returned because of the deadline" from "hung until the
    /// test's own timeout" (5 s); the lower bounds carry the precise timing claims.
    const SLACK: Duration = Duration::from_millis(1500);

    async fn acquired(client: Client, c: LeaseConfig) -> Leadership {
        tokio::time::timeout(secs(5), acquire(client, c))
            .await
            .expect("acquired in time")
    }

    #[tokio::test]
    async fn hung_renewal_loses_leadership_by_the_fencing_deadline() {
        let (state, client) = fake();
        let c = config("me", secs(1), Duration::from_millis(100));
        let before = Instant::now();
        let mut leadership = acquired(client, c).await;
        assert!(leadership.acquired_at() >= before);
        state.lock().unwrap().stall_puts = true;
        let deadline = leadership.fencing_deadline();
        assert_eq!(deadline, leadership.acquired_at() + fencing_period(secs(1)));
        let lost = tokio::time::timeout(secs(5), leadership.hold())
            .await
            .expect("hold() returned although the renewal hangs");
        let now = Instant::now();
        assert!(matches!(lost, LeaseError::Expired { .. }), "{lost:?}");
        assert!(now >= deadline, "not before the deadline");
        assert!(
            now < deadline + SLACK,
            "by the deadline: {:?} late",
            now - deadline
        );
        assert!(state.lock().unwrap().puts >= 1, "a renewal was attempted");
    }

    #[tokio::test]
    async fn fence_counts_from_acquisition_not_from_hold() {
        let (_state, client) = fake();
        let c = config("me", secs(1), Duration::from_millis(100));
        let mut leadership = acquired(client, c).await;
        tokio::time::sleep_until(leadership.fencing_deadline()).await;
        let started = Instant::now();
        let lost = tokio::time::timeout(secs(5), leadership.hold())
            .await
            .unwrap();
        assert!(matches!(lost, LeaseError::Expired { .. }), "{lost:?}");
        assert!(started.elapsed() < SLACK, "at once");
    }

    #[tokio::test]
    async fn fence_is_measured_from_before_the_write_was_sent() {
        let (state, client) = fake();
        let delay = Duration::from_millis(300);
        state.lock().unwrap().write_delay = delay;
        let c = config("me", secs(1), Duration::from_millis(100));
        let before = Instant::now();
        let mut leadership = acquired(client, c).await;
        let acquired_at = leadership.acquired_at();
        assert!(acquired_at >= before);
        assert!(
            Instant::now() >= acquired_at + delay,
            "acquisition instant precedes the create request, not its answer"
        );
        assert_eq!(
            leadership.fencing_deadline(),
            fencing_deadline(acquired_at, secs(1))
        );

        let before = Instant::now();
        let sent = leadership.renew().await.expect("renewed");
        assert!(sent >= before && Instant::now() >= sent + delay);

        // Through hold(): renewals answered late keep leadership, and the fence counts from
        // when each was sent, not from its answer. (A fresh, prompt renewal first, applied the
        // way hold() does.)
        state.lock().unwrap().write_delay = Duration::ZERO;
        leadership.last_renewal = leadership.renew().await.expect("renewed");
        state.lock().unwrap().write_delay = Duration::from_millis(200);
        let held = tokio::time::timeout(Duration::from_millis(1500), leadership.hold()).await;
        assert!(held.is_err(), "still leading: {held:?}");
        let fence = fencing_period(secs(1));
        let now = Instant::now();
        assert!(leadership.fencing_deadline() > before + secs(1));
        assert!(leadership.fencing_deadline() <= now - Duration::from_millis(200) + fence);
    }

    #[tokio::test]
    async fn holder_keeps_renewing_and_moves_the_fence() {
        let (state, client) = fake();
        let c = config("me", secs(1), Duration::from_millis(100));
        let mut leadership = acquired(client, c).await;
        let first = leadership.fencing_deadline();
        let held = tokio::time::timeout(secs(2), leadership.hold()).await;
        assert!(held.is_err(), "still leading: {held:?}");
        assert!(leadership.fencing_deadline() > first + secs(1));
        assert!(state.lock().unwrap().puts >= 10);
        let stored = state.lock().unwrap().lease.clone().unwrap();
        assert_eq!(stored.spec.unwrap().lease_transitions, Some(0));
    }

    #[tokio::test]
    async fn conflict_while_holder_is_retried_and_not_counted_as_renewal() {
        let (state, client) = fake();
        // A lease long enough that the conflicting round ends before the fence, however loaded the
        // machine: what fails it is the conflicts, not the deadline.
        let c = config("me", secs(5), Duration::from_millis(100));
        let mut leadership = acquired(client, c).await;
        let acquired_at = leadership.acquired_at();
        state.lock().unwrap().bump_before_put = 1;
        let before = Instant::now();
        let sent = leadership.renew().await.expect("renewed after the retry");
        assert!(sent >= before);
        {
            let s = state.lock().unwrap();
            assert_eq!(s.puts, 2, "conflict, then the retried replace");
            assert_eq!(s.gets, 2, "the acquisition read and the re-read");
            assert_eq!(
                leadership.current.metadata.resource_version,
                s.lease.as_ref().unwrap().metadata.resource_version,
                "the retry wrote"
            );
        }

        // Conflicts on every attempt: the round fails, the fence does not move.
        state.lock().unwrap().bump_before_put = 100;
        assert!(matches!(
            leadership.renew().await,
            Err(RenewError::Kube(e)) if is_status(&e, 409)
        ));
        assert_eq!(
            leadership.fencing_deadline(),
            fencing_deadline(acquired_at, secs(5)),
            "renew() alone does not move the fence, and failed rounds never do"
        );
        let lost = tokio::time::timeout(secs(5), leadership.hold())
            .await
            .unwrap();
        assert!(
            matches!(&lost, LeaseError::RenewFailed { source, .. } if is_status(source, 409)),
            "{lost:?}"
        );
        assert!(Instant::now() < leadership.fencing_deadline() + SLACK);
    }

    #[tokio::test]
    async fn conflict_with_a_new_holder_loses_at_once() {
        let (state, client) = fake();
        let c = config("me", secs(1), Duration::from_millis(100));
        let mut leadership = acquired(client, c).await;
        state.lock().unwrap().steal_before_put = Some("other".to_owned());
        let lost = tokio::time::timeout(secs(5), leadership.hold())
            .await
            .unwrap();
        assert!(
            matches!(&lost, LeaseError::Lost(_, holder) if holder == "other"),
            "{lost:?}"
        );
    }

    #[tokio::test]
    async fn deleted_lease_loses_at_once() {
        let (state, client) = fake();
        let c = config("me", secs(1), Duration::from_millis(100));
        let mut leadership = acquired(client, c).await;
        state.lock().unwrap().lease = None;
        let lost = tokio::time::timeout(secs(5), leadership.hold())
            .await
            .unwrap();
        assert!(matches!(lost, LeaseError::Deleted(_)), "{lost:?}");
    }

    #[tokio::test]
    async fn standby_takes_over_a_skewed_lease_after_observing_it_unchanged() {
        let (state, client) = fake();
        // The dead holder's clock was an hour ahead: by the wall clock its lease never lapses.
        let mut held = spec(Some("other"), Some(Timestamp::now().as_second() + 3600), 1);
        held.lease_transitions = Some(4);
        state.lock().unwrap().store(lease("0", Some(held)));
        let c = config("me", secs(5), Duration::from_millis(100));
        let started = Instant::now();
        let leadership = acquired(client, c).await;
        let waited = started.elapsed();
        assert!(
            waited >= secs(1),
            "waited the record's duration: {waited:?}"
        );
        assert!(
            waited < secs(1) + SLACK + Duration::from_millis(100),
            "{waited:?}"
        );
        assert!(leadership.acquired_at() >= started + secs(1));
        let spec = leadership.current.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(5));
    }

    #[tokio::test]
    async fn released_lease_is_taken_at_once_and_counts_a_transition() {
        let (state, client) = fake();
        let c = config("a", secs(5), Duration::from_millis(100));
        let leadership = acquired(client.clone(), c).await;
        leadership.release().await;
        let stored = state.lock().unwrap().lease.clone().unwrap();
        assert_eq!(stored.spec.as_ref().unwrap().holder_identity, None);
        let started = Instant::now();
        let b = acquired(client, config("b", secs(5), Duration::from_millis(100))).await;
        assert!(started.elapsed() < SLACK);
        assert_eq!(b.current.spec.unwrap().lease_transitions, Some(1));
    }
}
