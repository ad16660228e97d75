//! The staged renewal of a webhook that keeps its certificates in a Secret (A25): a serving
//! certificate is written only once its CA is trusted.

mod common;

use certs::inspect::parse_certificates;
use certs::rotation::{ServingReason, create, plan, rotate};
use certs::{Action, Material, Plan};
use common::{names, short_policy, t0, verify};
use time::Duration;

fn write(p: Plan) -> certs::Rotation {
    match p {
        Plan::Write(r) => r,
        other => panic!("expected a write, got {other:?}"),
    }
}

fn head_ca_der(m: &Material) -> Vec<u8> {
    parse_certificates("ca.crt", &m.ca_bundle_pem).unwrap()[0]
        .der
        .clone()
}

#[test]
fn an_empty_secret_gets_a_ca_alone_then_a_serving_certificate_once_trusted() {
    let policy = short_policy();
    let first = write(plan(None, false, &names(), &policy, t0()).unwrap());
    assert_eq!(first.actions, vec![Action::FirstCa]);
    assert!(first.material.cert_pem.is_empty() && first.material.key_pem.is_empty());
    assert!(matches!(
        plan(Some(&first.material), false, &names(), &policy, t0()).unwrap(),
        Plan::AwaitTrust
    ));
    let second = write(plan(Some(&first.material), true, &names(), &policy, t0()).unwrap());
    assert_eq!(
        second.actions,
        vec![Action::NewServingCert {
            reason: ServingReason::Missing
        }]
    );
    assert_eq!(second.material.ca_bundle_pem, first.material.ca_bundle_pem);
    assert_eq!(second.material.ca_key_pem, first.material.ca_key_pem);
    verify(
        &second.material.cert_pem,
        &second.material.ca_bundle_pem,
        "portcullis-webhook.portcullis-system.svc",
        t0(),
    )
    .unwrap();
    assert!(matches!(
        plan(Some(&second.material), true, &names(), &policy, t0()).unwrap(),
        Plan::Keep
    ));
}

#[test]
fn unreadable_ca_material_starts_over() {
    let garbage = Material {
        ca_bundle_pem: "not pem".into(),
        ca_key_pem: "not pem".into(),
        cert_pem: String::new(),
        key_pem: String::new(),
    };
    let r = write(plan(Some(&garbage), true, &names(), &short_policy(), t0()).unwrap());
    assert_eq!(r.actions, vec![Action::FirstCa]);
}

#[test]
fn a_new_ca_is_written_without_its_serving_certificate() {
    let policy = short_policy();
    // A serving certificate renewed at day 60 is valid until day 80; the CA (100d) is due from
    // day 70.
    let m = create(&names(), &policy, t0()).unwrap();
    let m = rotate(&m, &names(), &policy, t0() + Duration::days(60))
        .unwrap()
        .material;
    let later = t0() + Duration::days(75);
    let r = write(plan(Some(&m), true, &names(), &policy, later).unwrap());
    assert!(matches!(r.actions.as_slice(), [Action::NewCa { .. }]));
    assert_eq!(r.material.cert_pem, m.cert_pem, "the serving pair is kept");
    assert_eq!(r.material.key_pem, m.key_pem);
    let bundle = parse_certificates("ca.crt", &r.material.ca_bundle_pem).unwrap();
    assert_eq!(bundle.len(), 2, "the old CA stays in the bundle");
    assert_eq!(bundle[1].der, head_ca_der(&m));
    // Still served and trusted through the bundle that now leads with the new CA.
    verify(
        &r.material.cert_pem,
        &r.material.ca_bundle_pem,
        "portcullis-webhook",
        later,
    )
    .unwrap();
    // Not trusted yet: the serving certificate waits.
    assert!(matches!(
        plan(Some(&r.material), false, &names(), &policy, later).unwrap(),
        Plan::AwaitTrust
    ));
    // Trusted: a serving certificate of the new CA.
    let b = write(plan(Some(&r.material), true, &names(), &policy, later).unwrap());
    assert_eq!(
        b.actions,
        vec![Action::NewServingCert {
            reason: ServingReason::NotSignedByCa
        }]
    );
    assert_eq!(b.material.ca_bundle_pem, r.material.ca_bundle_pem);
    let leaf = &parse_certificates("tls.crt", &b.material.cert_pem).unwrap()[0];
    assert!(leaf.is_signed_by(&bundle[0]));
}

#[test]
fn a_due_serving_certificate_waits_for_trust() {
    let policy = short_policy();
    let m = create(&names(), &policy, t0()).unwrap();
    let later = t0() + Duration::days(16);
    assert!(matches!(
        plan(Some(&m), false, &names(), &policy, later).unwrap(),
        Plan::AwaitTrust
    ));
    let r = write(plan(Some(&m), true, &names(), &policy, later).unwrap());
    assert!(matches!(
        r.actions.as_slice(),
        [Action::NewServingCert {
            reason: ServingReason::ExpiresSoon { .. }
        }]
    ));
    assert_ne!(r.material.cert_pem, m.cert_pem);
}
