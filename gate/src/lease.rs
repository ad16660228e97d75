//! Leader election through a `coordination.k8s.io/v1` Lease (kube 5 ships no helper).
//!
//! Acquire and renew are replaces guarded by the Lease's `resourceVersion` (optimistic
//! concurrency): of two candidates writing at once, one gets a conflict. A standby takes over
//! once `renewTime + leaseDurationSeconds` has passed. The holder gives up (and the process
//! exits) when it cannot renew before the lease would lapse.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

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
}

/// Whether `identity` may take the lease now: free, already ours, or lapsed.
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

/// The spec after `identity` acquires or renews.
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
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1)),
        acquire_time: if ours {
            previous.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours || previous.holder_identity.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..previous
    }
}

/// A held lease.
pub struct Leadership {
    api: Api<Lease>,
    config: LeaseConfig,
    current: Lease,
}

/// Waits until this process holds the lease.
pub async fn acquire(client: Client, config: LeaseConfig) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    loop {
        match try_acquire(&api, &config).await {
            Ok(Some(current)) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                return Leadership {
                    api,
                    config,
                    current,
                };
            }
            Ok(None) => tracing::debug!(lease = %config.name, "lease held by another process"),
            Err(e) => tracing::warn!(lease = %config.name, error = %e, "lease acquisition failed"),
        }
        tokio::time::sleep(config.retry).await;
    }
}

async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<Option<Lease>, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&config.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(claimed(None, &config.identity, config.duration, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(l) => Ok(Some(l)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some(existing) => {
            if !may_acquire(existing.spec.as_ref(), &config.identity, now) {
                return Ok(None);
            }
            let mut next = existing.clone();
            next.spec = Some(claimed(
                existing.spec.as_ref(),
                &config.identity,
                config.duration,
                now,
            ));
            match api
                .replace(&config.name, &PostParams::default(), &next)
                .await
            {
                Ok(l) => Ok(Some(l)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

impl Leadership {
    /// Renews until leadership is lost; only returns with the reason.
    pub async fn hold(&mut self) -> LeaseError {
        let mut last_renewal = tokio::time::Instant::now();
        // Give up with a margin before the lease lapses, so a standby never overlaps with us.
        let deadline = self.config.duration.mul_f32(0.66);
        loop {
            tokio::time::sleep(self.config.retry).await;
            match self.renew().await {
                Ok(()) => last_renewal = tokio::time::Instant::now(),
                Err(RenewError::Lost(holder)) => {
                    return LeaseError::Lost(self.config.name.clone(), holder);
                }
                Err(RenewError::Kube(e)) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "lease renewal failed");
                    if last_renewal.elapsed() > deadline {
                        return LeaseError::RenewFailed {
                            name: self.config.name.clone(),
                            source: e,
                        };
                    }
                }
            }
        }
    }

    async fn renew(&mut self) -> Result<(), RenewError> {
        let now = Timestamp::now();
        let mut next = self.current.clone();
        next.spec = Some(claimed(
            self.current.spec.as_ref(),
            &self.config.identity,
            self.config.duration,
            now,
        ));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            Ok(l) => {
                self.current = l;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Someone wrote the lease: re-read; if it is still ours, carry on from it.
                let fresh = self
                    .api
                    .get(&self.config.name)
                    .await
                    .map_err(RenewError::Kube)?;
                let holder = fresh
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if holder != self.config.identity {
                    return Err(RenewError::Lost(holder));
                }
                self.current = fresh;
                Ok(())
            }
            Err(e) => Err(RenewError::Kube(e)),
        }
    }

    /// Gives the lease up on a graceful shutdown so a standby takes over at once.
    pub async fn release(mut self) {
        let mut next = self.current.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
        }
        if let Err(e) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            tracing::warn!(error = %e, "could not release the lease");
        }
        self.current = next;
    }
}

enum RenewError {
    Lost(String),
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

    #[test]
    fn acquisition_rules() {
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
    fn claim_counts_transitions_and_keeps_acquire_time_on_renew() {
        let first = claimed(None, "a", Duration::from_secs(15), t(10));
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_duration_seconds, Some(15));
        assert_eq!(first.lease_transitions, Some(0));
        let renewed = claimed(Some(&first), "a", Duration::from_secs(15), t(20));
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(t(20))));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claimed(Some(&renewed), "b", Duration::from_secs(15), t(40));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(40))));
        assert_eq!(taken.lease_transitions, Some(1));
    }
}
