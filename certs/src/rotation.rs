//! The certificate set of one webhook and how it is renewed.
//!
//! Trust moves in overlapping steps. The serving certificate is replaced well before it expires.
//! When the CA nears its end, a new CA signs a new serving certificate and is put at the head of
//! the bundle; the old CA stays in the bundle until it has expired, so that webhook replicas still
//! serving a certificate of the old CA (the Secret volume is updated with a delay) stay trusted.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::CertError;
use crate::inspect::{CertInfo, key_spki, parse_certificates, parse_key};
use crate::pki::{Issued, KeyAlgorithm, ServiceName, issue_ca, issue_serving};
use crate::validity::format_duration;

/// The four PEM texts that make up a webhook's certificates (the files of a state directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// `ca.crt`: the current CA first, then older CAs kept during an overlap. This is the
    /// `caBundle` of the webhook configurations.
    pub ca_bundle_pem: String,
    /// `ca.key`: the current CA's private key. It never goes into the webhook's Secret.
    pub ca_key_pem: String,
    /// `tls.crt`: the serving certificate.
    pub cert_pem: String,
    /// `tls.key`: the serving certificate's key.
    pub key_pem: String,
}

/// Lifetimes, renewal thresholds and key type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Key type of new certificates.
    pub key_algorithm: KeyAlgorithm,
    /// Lifetime of a new CA.
    pub ca_validity: Duration,
    /// Lifetime of a new serving certificate (cut short at the CA's end).
    pub validity: Duration,
    /// Renew the serving certificate when less than this is left.
    pub renew_before: Duration,
    /// Make a new CA when less than this is left of the current one; this is also how long the
    /// old CA stays in the bundle next to the new one.
    pub ca_renew_before: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ca_validity: Duration::days(3650),
            validity: Duration::days(365),
            renew_before: Duration::days(30),
            ca_renew_before: Duration::days(90),
        }
    }
}

impl Policy {
    /// Rejects settings under which a freshly made certificate would already be due for renewal
    /// (every run would renew again) or the overlap could not cover a serving certificate's renewal.
    pub fn check(&self) -> Result<(), CertError> {
        let f = format_duration;
        if self.renew_before >= self.validity {
            return Err(CertError::Policy(format!(
                "renew-before ({}) must be shorter than validity ({})",
                f(self.renew_before),
                f(self.validity)
            )));
        }
        if self.ca_renew_before >= self.ca_validity {
            return Err(CertError::Policy(format!(
                "ca-renew-before ({}) must be shorter than ca-validity ({})",
                f(self.ca_renew_before),
                f(self.ca_validity)
            )));
        }
        if self.ca_renew_before <= self.renew_before {
            return Err(CertError::Policy(format!(
                "ca-renew-before ({}) must be longer than renew-before ({}): a serving certificate cut short at the CA's end would otherwise be renewed on every run",
                f(self.ca_renew_before),
                f(self.renew_before)
            )));
        }
        Ok(())
    }
}

/// Why a CA or serving certificate was made, or an old CA dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A first CA was made: there was none that could be read.
    FirstCa,
    /// A new CA was made because the current one ends at `not_after`.
    NewCa {
        /// End of the replaced CA.
        old_not_after: OffsetDateTime,
    },
    /// A new serving certificate was made.
    NewServingCert {
        /// Why.
        reason: ServingReason,
    },
    /// An expired old CA left the bundle.
    DroppedExpiredCa {
        /// Its subject.
        subject: String,
        /// When it expired.
        not_after: OffsetDateTime,
    },
}

/// Why the serving certificate was replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServingReason {
    /// The CA was replaced.
    NewCa,
    /// It ends within the renewal threshold.
    ExpiresSoon {
        /// Its end.
        not_after: OffsetDateTime,
    },
    /// It is not valid yet (clock moved back, or made elsewhere).
    NotYetValid {
        /// Its start.
        not_before: OffsetDateTime,
    },
    /// The current CA did not sign it.
    NotSignedByCa,
    /// Its DNS names are not the Service's names.
    NamesDiffer {
        /// The names it has.
        have: Vec<String>,
        /// The names wanted.
        want: Vec<String>,
    },
    /// `tls.key` is not the key of `tls.crt`.
    KeyMismatch,
    /// There is none, or it cannot be read.
    Missing,
}

/// RFC 3339, as Kubernetes writes times.
fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::FirstCa => write!(f, "new CA: there was none that could be read"),
            Action::NewCa { old_not_after } => write!(
                f,
                "new CA: the current CA expires at {}; it stays in the bundle until then",
                rfc3339(old_not_after)
            ),
            Action::NewServingCert { reason } => write!(f, "new serving certificate: {reason}"),
            Action::DroppedExpiredCa { subject, not_after } => {
                write!(
                    f,
                    "dropped CA {subject} from the bundle: it expired at {not_after}"
                )
            }
        }
    }
}

impl fmt::Display for ServingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServingReason::NewCa => write!(f, "the CA was replaced"),
            ServingReason::ExpiresSoon { not_after } => {
                write!(f, "the current one expires at {}", rfc3339(not_after))
            }
            ServingReason::NotYetValid { not_before } => {
                write!(
                    f,
                    "the current one is not valid before {}",
                    rfc3339(not_before)
                )
            }
            ServingReason::NotSignedByCa => {
                write!(f, "the current CA did not sign the current one")
            }
            ServingReason::NamesDiffer { have, want } => write!(
                f,
                "the current one names [{}], the Service needs [{}]",
                have.join(", "),
                want.join(", ")
            ),
            ServingReason::KeyMismatch => write!(f, "tls.key does not belong to tls.crt"),
            ServingReason::Missing => write!(f, "there is none that can be read"),
        }
    }
}

/// The outcome of [`rotate`]: the material to keep and what changed (empty when nothing did).
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The certificates after renewal; equal to the input when nothing was due.
    pub material: Material,
    /// What was done, in order.
    pub actions: Vec<Action>,
}

impl Rotation {
    /// Whether anything was renewed or dropped.
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// A new CA and a serving certificate for `names`.
pub fn create(
    names: &ServiceName,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Material, CertError> {
    policy.check()?;
    let ca = issue_ca(policy.key_algorithm, policy.ca_validity, now)?;
    let serving = issue_serving(
        &ca,
        now + policy.ca_validity,
        names,
        policy.key_algorithm,
        policy.validity,
        now,
    )?;
    Ok(Material {
        ca_bundle_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
    })
}

/// Renews what is due at `now` and leaves the rest alone; see the module documentation.
///
/// Unreadable input is an error, never a reason to start over: replacing a CA that the API
/// server still trusts by accident would take every webhook down.
pub fn rotate(
    current: &Material,
    names: &ServiceName,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Rotation, CertError> {
    policy.check()?;
    let (bundle, ca_index) = current_ca(current)?;
    let serving = parse_certificates("tls.crt", &current.cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| CertError::CertificatePem {
            what: "tls.crt".to_string(),
            reason: "no certificate".to_string(),
        })?;
    let serving_key = parse_key("tls.key", &current.key_pem)?;

    let mut actions = Vec::new();
    let current_ca = &bundle[ca_index];

    // 1. The CA.
    let (ca, ca_info, ca_renewed) = if current_ca.not_after - now < policy.ca_renew_before {
        let issued = issue_ca(policy.key_algorithm, policy.ca_validity, now)?;
        let info = parse_certificates("new CA", &issued.cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| CertError::CertificatePem {
                what: "new CA".to_string(),
                reason: "no certificate".to_string(),
            })?;
        actions.push(Action::NewCa {
            old_not_after: current_ca.not_after,
        });
        (issued, info, true)
    } else {
        let issued = Issued {
            cert_pem: current_ca.pem(),
            key_pem: current.ca_key_pem.clone(),
        };
        (issued, current_ca.clone(), false)
    };

    // 2. The bundle: a new CA goes first; CAs that have expired leave. The order of the rest is
    // kept, and an untouched bundle keeps its exact text.
    let mut kept: Vec<&CertInfo> = Vec::new();
    let mut dropped = false;
    for cert in &bundle {
        if cert.not_after <= now {
            actions.push(Action::DroppedExpiredCa {
                subject: cert.subject.clone(),
                not_after: cert.not_after,
            });
            dropped = true;
        } else {
            kept.push(cert);
        }
    }
    let ca_bundle_pem = if ca_renewed || dropped {
        let mut pem = if ca_renewed {
            ca_info.pem()
        } else {
            String::new()
        };
        for cert in &kept {
            pem.push_str(&cert.pem());
        }
        pem
    } else {
        current.ca_bundle_pem.clone()
    };

    // 3. The serving certificate.
    let want = names.dns_names();
    let reason = if ca_renewed {
        Some(ServingReason::NewCa)
    } else if key_spki(&serving_key) != serving.spki {
        Some(ServingReason::KeyMismatch)
    } else if !serving.is_signed_by(&ca_info) {
        Some(ServingReason::NotSignedByCa)
    } else if !same_names(&serving.dns_names, &want) {
        Some(ServingReason::NamesDiffer {
            have: serving.dns_names.clone(),
            want: want.clone(),
        })
    } else if serving.not_before > now {
        Some(ServingReason::NotYetValid {
            not_before: serving.not_before,
        })
    } else if serving.not_after - now < policy.renew_before {
        Some(ServingReason::ExpiresSoon {
            not_after: serving.not_after,
        })
    } else {
        None
    };
    let (cert_pem, key_pem) = match reason {
        Some(reason) => {
            let issued = issue_serving(
                &ca,
                ca_info.not_after,
                names,
                policy.key_algorithm,
                policy.validity,
                now,
            )?;
            actions.push(Action::NewServingCert { reason });
            (issued.cert_pem, issued.key_pem)
        }
        None => (current.cert_pem.clone(), current.key_pem.clone()),
    };

    Ok(Rotation {
        material: Material {
            ca_bundle_pem,
            ca_key_pem: ca.key_pem,
            cert_pem,
            key_pem,
        },
        actions,
    })
}

/// The CA bundle and the index in it of the certificate whose key is `ca.key`.
fn current_ca(current: &Material) -> Result<(Vec<CertInfo>, usize), CertError> {
    let bundle = parse_certificates("ca.crt", &current.ca_bundle_pem)?;
    let ca_key = parse_key("ca.key", &current.ca_key_pem)?;
    let ca_spki = key_spki(&ca_key);
    let index =
        bundle
            .iter()
            .position(|c| c.spki == ca_spki)
            .ok_or(CertError::CaKeyNotInBundle {
                count: bundle.len(),
            })?;
    Ok((bundle, index))
}

/// What a webhook that keeps its certificates in a Secret does next (decision A25): unlike
/// [`rotate`], a serving certificate signed by a CA is only ever written once the API server
/// trusts that CA, so a new CA is written alone first (the serving pair is kept) and its serving
/// certificate follows on a later pass.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Nothing is due.
    Keep,
    /// A serving certificate is due, but the CA that would sign it is not yet trusted everywhere.
    AwaitTrust,
    /// Write this material; its actions say why.
    Write(Rotation),
}

/// Decides [`Plan`] for the material read from the Secret (`None`: empty, or no CA that can be
/// read). `ca_trusted` says that every `caBundle` the API server uses holds the current CA of
/// `current` (the head of its bundle), and has for long enough to be in effect.
///
/// Unlike [`rotate`], unreadable CA material starts over with a new CA: the Secret belongs to
/// the webhook alone, and without a CA it could never serve again. An unreadable serving pair is
/// reissued by the current CA.
pub fn plan(
    current: Option<&Material>,
    ca_trusted: bool,
    names: &ServiceName,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<Plan, CertError> {
    policy.check()?;
    let Some((current, (bundle, ca_index))) =
        current.and_then(|m| current_ca(m).ok().map(|ca| (m, ca)))
    else {
        let fresh = create(names, policy, now)?;
        return Ok(Plan::Write(Rotation {
            material: Material {
                cert_pem: String::new(),
                key_pem: String::new(),
                ..fresh
            },
            actions: vec![Action::FirstCa],
        }));
    };
    let serving_readable = parse_certificates("tls.crt", &current.cert_pem)
        .is_ok_and(|c| !c.is_empty())
        && parse_key("tls.key", &current.key_pem).is_ok();
    if !serving_readable {
        if !ca_trusted {
            return Ok(Plan::AwaitTrust);
        }
        let ca = Issued {
            cert_pem: bundle[ca_index].pem(),
            key_pem: current.ca_key_pem.clone(),
        };
        let issued = issue_serving(
            &ca,
            bundle[ca_index].not_after,
            names,
            policy.key_algorithm,
            policy.validity,
            now,
        )?;
        return Ok(Plan::Write(Rotation {
            material: Material {
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
                ..current.clone()
            },
            actions: vec![Action::NewServingCert {
                reason: ServingReason::Missing,
            }],
        }));
    }
    let rotation = rotate(current, names, policy, now)?;
    let new_ca = rotation
        .actions
        .iter()
        .any(|a| matches!(a, Action::NewCa { .. }));
    let new_serving = rotation
        .actions
        .iter()
        .any(|a| matches!(a, Action::NewServingCert { .. }));
    if new_serving && (new_ca || !ca_trusted) {
        // The serving pair waits; what else changed (CA, bundle) is written now.
        let material = Material {
            cert_pem: current.cert_pem.clone(),
            key_pem: current.key_pem.clone(),
            ..rotation.material
        };
        if material == *current {
            return Ok(Plan::AwaitTrust);
        }
        let actions = rotation
            .actions
            .into_iter()
            .filter(|a| !matches!(a, Action::NewServingCert { .. }))
            .collect();
        return Ok(Plan::Write(Rotation { material, actions }));
    }
    Ok(if rotation.changed() {
        Plan::Write(rotation)
    } else {
        Plan::Keep
    })
}

fn same_names(have: &[String], want: &[String]) -> bool {
    let mut a: Vec<&str> = have.iter().map(String::as_str).collect();
    let mut b: Vec<&str> = want.iter().map(String::as_str).collect();
    a.sort_unstable();
    a.dedup();
    b.sort_unstable();
    b.dedup();
    a == b
}
