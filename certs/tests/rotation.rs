//! Creation and rotation, checked the way the API server checks a webhook: rustls' WebPKI
//! verifier trusting exactly the `caBundle`.

mod common;

use certs::inspect::parse_certificates;
use certs::rotation::{ServingReason, create, rotate};
use certs::{Action, CertError, KeyAlgorithm, Material, Policy, ServiceName};
use common::{count, names, short_policy, t0, verify};
use time::Duration;

#[test]
fn created_certificate_verifies_for_every_service_name_and_no_other() {
    let m = create(&names(), &Policy::default(), t0()).unwrap();
    let leaf = &parse_certificates("tls.crt", &m.cert_pem).unwrap()[0];
    assert_eq!(leaf.dns_names, names().dns_names());
    for name in names().dns_names() {
        verify(&m.cert_pem, &m.ca_bundle_pem, &name, t0()).unwrap();
    }
    assert!(
        verify(
            &m.cert_pem,
            &m.ca_bundle_pem,
            "other.portcullis-system.svc",
            t0()
        )
        .is_err()
    );
    // Another CA does not vouch for it.
    let stranger = create(&names(), &Policy::default(), t0()).unwrap();
    assert!(
        verify(
            &m.cert_pem,
            &stranger.ca_bundle_pem,
            "portcullis-webhook.portcullis-system.svc",
            t0()
        )
        .is_err()
    );
    // Validity: default one year, a CA of ten.
    assert_eq!(leaf.not_after, t0() + Duration::days(365));
    let ca = &parse_certificates("ca.crt", &m.ca_bundle_pem).unwrap()[0];
    assert!(ca.is_ca && !leaf.is_ca);
    assert_eq!(ca.not_after, t0() + Duration::days(3650));
    assert!(
        verify(
            &m.cert_pem,
            &m.ca_bundle_pem,
            "portcullis-webhook.portcullis-system.svc",
            t0() + Duration::days(366)
        )
        .is_err()
    );
}

#[test]
fn rsa_certificates_verify() {
    let policy = Policy {
        key_algorithm: KeyAlgorithm::Rsa2048,
        ..Policy::default()
    };
    let m = create(&names(), &policy, t0()).unwrap();
    assert!(m.key_pem.contains("BEGIN PRIVATE KEY"));
    verify(
        &m.cert_pem,
        &m.ca_bundle_pem,
        "portcullis-webhook.portcullis-system.svc",
        t0(),
    )
    .unwrap();
    // Rotation reads RSA keys back.
    let r = rotate(&m, &names(), &policy, t0() + Duration::days(340)).unwrap();
    assert!(matches!(
        r.actions.as_slice(),
        [Action::NewServingCert {
            reason: ServingReason::ExpiresSoon { .. }
        }]
    ));
    verify(
        &r.material.cert_pem,
        &r.material.ca_bundle_pem,
        "portcullis-webhook",
        t0() + Duration::days(340),
    )
    .unwrap();
}

#[test]
fn up_to_date_certificates_are_left_alone() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    for day in [0, 1, 14] {
        let r = rotate(&m, &names(), &short_policy(), t0() + Duration::days(day)).unwrap();
        assert!(!r.changed(), "day {day}: {:?}", r.actions);
        assert_eq!(
            r.material, m,
            "day {day}: the texts must stay byte for byte"
        );
    }
}

#[test]
fn serving_certificate_is_renewed_before_expiry_and_then_left_alone() {
    let policy = short_policy();
    let m = create(&names(), &policy, t0()).unwrap();
    let at = t0() + Duration::days(16); // 4 days left < renew_before 5 days
    let r = rotate(&m, &names(), &policy, at).unwrap();
    assert_eq!(r.actions.len(), 1, "{:?}", r.actions);
    assert!(matches!(
        r.actions[0],
        Action::NewServingCert {
            reason: ServingReason::ExpiresSoon { .. }
        }
    ));
    assert_eq!(
        r.material.ca_bundle_pem, m.ca_bundle_pem,
        "the CA is not due"
    );
    assert_eq!(r.material.ca_key_pem, m.ca_key_pem);
    assert_ne!(
        r.material.key_pem, m.key_pem,
        "a new key comes with the new certificate"
    );
    let leaf = &parse_certificates("tls.crt", &r.material.cert_pem).unwrap()[0];
    assert_eq!(leaf.not_after, at + Duration::days(20));
    verify(
        &r.material.cert_pem,
        &r.material.ca_bundle_pem,
        "portcullis-webhook.portcullis-system.svc.cluster.local",
        at + Duration::days(19),
    )
    .unwrap();
    // Idempotent: the same run again changes nothing.
    let again = rotate(&r.material, &names(), &policy, at).unwrap();
    assert!(!again.changed(), "{:?}", again.actions);
    assert_eq!(again.material, r.material);
}

/// Runs rotation every few days across three CA generations. After every run, the certificate a
/// webhook replica was serving before the run (its Secret volume not yet refreshed) must still be
/// trusted by the new bundle while it is valid, and the new certificate must be trusted too.
#[test]
fn ca_rotation_keeps_the_old_ca_trusted_during_the_overlap() {
    let policy = short_policy();
    let mut m = create(&names(), &policy, t0()).unwrap();
    let host = "portcullis-webhook.portcullis-system.svc";
    let mut saw_overlap = false;
    let mut new_cas = 0;
    let mut dropped = 0;
    for day in (3..=260).step_by(3) {
        let at = t0() + Duration::days(day);
        let before = m.clone();
        let r = rotate(&before, &names(), &policy, at).unwrap();
        for a in &r.actions {
            match a {
                Action::NewCa { .. } => new_cas += 1,
                Action::DroppedExpiredCa { .. } => dropped += 1,
                Action::NewServingCert { .. } => {}
                Action::FirstCa => panic!("rotate never starts over"),
            }
        }
        m = r.material;
        verify(&m.cert_pem, &m.ca_bundle_pem, host, at)
            .unwrap_or_else(|e| panic!("day {day}: new certificate not trusted: {e}"));
        let old_leaf = &parse_certificates("tls.crt", &before.cert_pem).unwrap()[0];
        if old_leaf.not_after > at {
            verify(&before.cert_pem, &m.ca_bundle_pem, host, at).unwrap_or_else(|e| {
                panic!(
                    "day {day}: the certificate served until now lost trust: {e} ({:?})",
                    r.actions
                )
            });
        }
        let cas = count(&m.ca_bundle_pem);
        assert!((1..=2).contains(&cas), "day {day}: {cas} CAs in the bundle");
        saw_overlap |= cas == 2;
        // No CA in the bundle is expired after a run.
        for ca in parse_certificates("ca.crt", &m.ca_bundle_pem).unwrap() {
            assert!(ca.not_after > at, "day {day}: expired CA kept");
        }
        // Idempotent at every step.
        let again = rotate(&m, &names(), &policy, at).unwrap();
        assert!(
            !again.changed(),
            "day {day}: second run changed {:?}",
            again.actions
        );
    }
    assert!(saw_overlap, "the bundle never held old and new CA together");
    assert!(
        new_cas >= 2,
        "expected at least two CA renewals in 260 days, got {new_cas}"
    );
    assert!(
        dropped >= 2,
        "expired CAs must leave the bundle, {dropped} left"
    );
}

#[test]
fn ca_renewal_puts_the_new_ca_first_and_keeps_the_old_one() {
    let policy = short_policy();
    let m = create(&names(), &policy, t0()).unwrap();
    let at = t0() + Duration::days(75); // 25 days of the CA left < 30
    let r = rotate(&m, &names(), &policy, at).unwrap();
    assert!(
        matches!(r.actions[0], Action::NewCa { .. }),
        "{:?}",
        r.actions
    );
    assert!(r.actions.contains(&Action::NewServingCert {
        reason: ServingReason::NewCa
    }));
    let bundle = parse_certificates("ca.crt", &r.material.ca_bundle_pem).unwrap();
    let old = &parse_certificates("ca.crt", &m.ca_bundle_pem).unwrap()[0];
    assert_eq!(bundle.len(), 2);
    assert_eq!(
        bundle[1].der, old.der,
        "the old CA stays, after the new one"
    );
    assert_ne!(
        bundle[0].subject, old.subject,
        "old and new CA are told apart by name"
    );
    assert_ne!(r.material.ca_key_pem, m.ca_key_pem);
    // The new serving certificate is the new CA's, and the old CA alone does not trust it.
    let leaf = &parse_certificates("tls.crt", &r.material.cert_pem).unwrap()[0];
    assert!(leaf.is_signed_by(&bundle[0]) && !leaf.is_signed_by(old));
    assert!(
        verify(
            &r.material.cert_pem,
            &m.ca_bundle_pem,
            "portcullis-webhook",
            at
        )
        .is_err()
    );
    // Once the old CA has expired it is dropped; the current one stays.
    let later = at + Duration::days(26);
    let r2 = rotate(&r.material, &names(), &policy, later).unwrap();
    assert!(
        r2.actions
            .iter()
            .any(|a| matches!(a, Action::DroppedExpiredCa { .. })),
        "{:?}",
        r2.actions
    );
    assert_eq!(count(&r2.material.ca_bundle_pem), 1);
    assert_eq!(
        parse_certificates("ca.crt", &r2.material.ca_bundle_pem).unwrap()[0].der,
        bundle[0].der
    );
}

#[test]
fn serving_certificate_is_reissued_when_the_service_name_changes() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let other = ServiceName::new("hooks", "portcullis-system", "").unwrap();
    let r = rotate(&m, &other, &short_policy(), t0()).unwrap();
    assert!(matches!(
        &r.actions[..],
        [Action::NewServingCert {
            reason: ServingReason::NamesDiffer { .. }
        }]
    ));
    assert_eq!(r.material.ca_bundle_pem, m.ca_bundle_pem);
    verify(
        &r.material.cert_pem,
        &r.material.ca_bundle_pem,
        "hooks.portcullis-system.svc",
        t0(),
    )
    .unwrap();
}

#[test]
fn mismatched_key_or_foreign_certificate_is_replaced() {
    let a = create(&names(), &short_policy(), t0()).unwrap();
    let b = create(&names(), &short_policy(), t0()).unwrap();
    let wrong_key = Material {
        key_pem: b.key_pem.clone(),
        ..a.clone()
    };
    let r = rotate(&wrong_key, &names(), &short_policy(), t0()).unwrap();
    assert!(r.actions.contains(&Action::NewServingCert {
        reason: ServingReason::KeyMismatch
    }));
    let foreign = Material {
        cert_pem: b.cert_pem.clone(),
        key_pem: b.key_pem.clone(),
        ..a.clone()
    };
    let r = rotate(&foreign, &names(), &short_policy(), t0()).unwrap();
    assert!(r.actions.contains(&Action::NewServingCert {
        reason: ServingReason::NotSignedByCa
    }));
    verify(
        &r.material.cert_pem,
        &a.ca_bundle_pem,
        "portcullis-webhook",
        t0(),
    )
    .unwrap();
}

#[test]
fn unreadable_input_is_a_clear_error_not_a_new_ca() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let cases = [
        (
            Material {
                ca_bundle_pem: "not a certificate".into(),
                ..m.clone()
            },
            "ca.crt",
        ),
        (
            Material {
                cert_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                ..m.clone()
            },
            "tls.crt",
        ),
        (
            Material {
                cert_pem: m.key_pem.clone(),
                ..m.clone()
            },
            "tls.crt",
        ),
        (
            Material {
                ca_key_pem: "garbage".into(),
                ..m.clone()
            },
            "ca.key",
        ),
        (
            Material {
                key_pem: String::new(),
                ..m.clone()
            },
            "tls.key",
        ),
    ];
    for (bad, file) in cases {
        let e = rotate(&bad, &names(), &short_policy(), t0()).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(
                e,
                CertError::CertificatePem { .. } | CertError::KeyPem { .. }
            ),
            "{file}: {e:?}"
        );
        assert!(text.starts_with(file), "the error names {file}: {text}");
    }
    let other = create(&names(), &short_policy(), t0()).unwrap();
    let e = rotate(
        &Material {
            ca_key_pem: other.ca_key_pem,
            ..m.clone()
        },
        &names(),
        &short_policy(),
        t0(),
    )
    .unwrap_err();
    assert!(
        matches!(e, CertError::CaKeyNotInBundle { count: 1 }),
        "{e:?}"
    );
}

#[test]
fn settings_that_would_renew_on_every_run_are_rejected() {
    let base = short_policy();
    for bad in [
        Policy {
            renew_before: Duration::days(20),
            ..base.clone()
        },
        Policy {
            ca_renew_before: Duration::days(100),
            ..base.clone()
        },
        Policy {
            ca_renew_before: Duration::days(5),
            ..base.clone()
        },
    ] {
        let e = create(&names(), &bad, t0()).unwrap_err();
        assert!(matches!(e, CertError::Policy(_)), "{e:?}");
    }
    base.check().unwrap();
    Policy::default().check().unwrap();
}
