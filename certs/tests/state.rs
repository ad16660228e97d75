//! The state directory: round trip, write-only-when-changed, and unreadable contents.

mod common;

use certs::CertError;
use certs::rotation::{create, rotate};
use certs::state::{load, save};
use common::{names, short_policy, t0};
use time::Duration;

#[test]
fn saved_material_loads_back_and_unchanged_files_are_not_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        load(tmp.path()).unwrap().is_none(),
        "an empty directory holds no state"
    );
    let m = create(&names(), &short_policy(), t0()).unwrap();
    assert_eq!(save(tmp.path(), &m).unwrap().len(), 4);
    assert_eq!(load(tmp.path()).unwrap().unwrap(), m);
    assert!(save(tmp.path(), &m).unwrap().is_empty());
    // A serving renewal rewrites the two serving files only.
    let r = rotate(&m, &names(), &short_policy(), t0() + Duration::days(16)).unwrap();
    let mut written = save(tmp.path(), &r.material).unwrap();
    written.sort_unstable();
    assert_eq!(written, ["tls.crt", "tls.key"]);
}

#[test]
fn unreadable_files_are_errors_that_name_them() {
    let tmp = tempfile::tempdir().unwrap();
    let m = create(&names(), &short_policy(), t0()).unwrap();
    save(tmp.path(), &m).unwrap();

    std::fs::write(tmp.path().join("ca.crt"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let e = load(tmp.path()).unwrap_err();
    assert!(matches!(e, CertError::CertificatePem { .. }), "{e:?}");
    assert!(
        e.to_string().contains("ca.crt") && e.to_string().contains("not UTF-8"),
        "{e}"
    );

    std::fs::write(tmp.path().join("ca.crt"), &m.ca_bundle_pem).unwrap();
    std::fs::remove_file(tmp.path().join("tls.key")).unwrap();
    std::fs::create_dir(tmp.path().join("tls.key")).unwrap();
    let e = load(tmp.path()).unwrap_err();
    assert!(matches!(e, CertError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("tls.key"), "{e}");

    std::fs::remove_dir(tmp.path().join("tls.key")).unwrap();
    std::fs::remove_file(tmp.path().join("tls.crt")).unwrap();
    let e = load(tmp.path()).unwrap_err();
    match e {
        CertError::IncompleteState {
            missing, present, ..
        } => {
            assert_eq!(missing, ["tls.crt", "tls.key"]);
            assert_eq!(present, ["ca.crt", "ca.key"]);
        }
        other => panic!("{other:?}"),
    }
}
