//! Holding a won Lease while the controllers run: renewals start at once (the fencing deadline
//! runs from the acquisition), loss ends the process's run, shutdown hands the Lease back.

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::lease::{self, Leadership, LeaseConfig, LeaseError};

/// How long the lease task gets to hand the Lease back at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The task renewing a held Lease.
pub struct Held {
    release: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LeaseError>>,
}

impl Held {
    /// Starts renewing `leadership` in the background.
    pub fn start(mut leadership: Leadership) -> Held {
        let (release, release_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let lost = tokio::select! {
                lost = leadership.hold() => Some(lost),
                _ = release_rx => None,
            };
            match lost {
                Some(lost) => Err(lost),
                None => {
                    leadership.release().await;
                    Ok(())
                }
            }
        });
        Held { release, task }
    }

    /// Resolves when leadership ends without a release: the reason, for the process to exit on.
    pub async fn lost(&mut self) -> String {
        match (&mut self.task).await {
            Ok(Err(e)) => format!("leadership lost: {e}"),
            Ok(Ok(())) => "lease task ended".to_owned(),
            Err(e) => format!("lease task died: {e}"),
        }
    }

    /// Hands the Lease back, so that a standby takes over at once (bounded wait).
    pub async fn release(self) {
        let _ = self.release.send(());
        let _ = tokio::time::timeout(RELEASE_TIMEOUT, self.task).await;
    }
}

/// Waits for the Lease, then starts holding it. Meanwhile the replica is a standby and reports
/// ready: it serves its endpoints and can take over, so rollouts and PodDisruptionBudgets count
/// it. Once it leads, `ready` waits again for the controllers' caches, which set it.
pub async fn acquire(client: Client, config: LeaseConfig, ready: &AtomicBool) -> Held {
    ready.store(true, Ordering::Relaxed);
    let leadership = lease::acquire(client, config).await;
    ready.store(false, Ordering::Relaxed);
    Held::start(leadership)
}

/// Resolves with the reason when `held` loses its Lease; never without one.
pub async fn lost(held: Option<&mut Held>) -> String {
    match held {
        Some(held) => held.lost().await,
        None => std::future::pending().await,
    }
}

/// Why a binary's run ended other than by SIGTERM.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("{0} stopped")]
    Work(&'static str),
    #[error("{0}")]
    Lost(String),
}

/// Runs `work` (the controllers, named `what`) until SIGTERM or Ctrl-C (`Ok`: the Lease is
/// handed back), until the work ends, or until leadership is lost (`Err`: the process exits, a
/// standby takes over while this replica restarts).
pub async fn serve(
    work: impl Future<Output = ()>,
    what: &'static str,
    mut held: Option<Held>,
) -> Result<(), Stopped> {
    tokio::select! {
        _ = work => Err(Stopped::Work(what)),
        lost = lost(held.as_mut()) => Err(Stopped::Lost(lost)),
        _ = shared::shutdown::signal() => {
            if let Some(held) = held {
                held.release().await;
            }
            Ok(())
        }
    }
}

/// The process's exit code: failure on any error (logged with its causes), so that a replica
/// which lost the Lease restarts.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
