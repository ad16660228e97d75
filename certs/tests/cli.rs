//! The `portcullis-certs` binary on a temporary state directory.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::verify;
use time::OffsetDateTime;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis-certs"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn create_then_rotate_leaves_an_up_to_date_set_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let d = dir.to_str().unwrap();
    let secret = tmp.path().join("secret.yaml");
    let o = run(&[
        "create",
        "--dir",
        d,
        "--secret-out",
        secret.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    verify(
        &read(&dir, "tls.crt"),
        &read(&dir, "ca.crt"),
        "portcullis-webhook.portcullis-system.svc",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "tls.key"] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is private, mode {mode:o}");
        }
    }
    let before: Vec<_> = ["ca.crt", "ca.key", "tls.crt", "tls.key"]
        .iter()
        .map(|f| {
            (
                read(&dir, f),
                std::fs::metadata(dir.join(f)).unwrap().modified().unwrap(),
            )
        })
        .collect();
    let secret_before = std::fs::read_to_string(&secret).unwrap();

    let o = run(&[
        "rotate",
        "--dir",
        d,
        "--secret-out",
        secret.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("up to date"), "{}", stderr(&o));
    let after: Vec<_> = ["ca.crt", "ca.key", "tls.crt", "tls.key"]
        .iter()
        .map(|f| {
            (
                read(&dir, f),
                std::fs::metadata(dir.join(f)).unwrap().modified().unwrap(),
            )
        })
        .collect();
    assert_eq!(before, after, "nothing rewritten");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), secret_before);

    // A second create would replace the CA: refused without --force.
    let o = run(&["create", "--dir", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("certificates exist already"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&dir, "ca.crt"), before[0].0);
    let o = run(&["create", "--dir", d, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(read(&dir, "ca.crt"), before[0].0);
}

#[test]
fn rotate_renews_when_the_threshold_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    assert!(
        run(&[
            "create",
            "--dir",
            d,
            "--validity",
            "10d",
            "--renew-before",
            "2d"
        ])
        .status
        .success()
    );
    let old = read(tmp.path(), "tls.crt");
    // A threshold longer than what is left (10 days) makes the certificate due now.
    let o = run(&[
        "rotate",
        "--dir",
        d,
        "--validity",
        "30d",
        "--renew-before",
        "11d",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("new serving certificate"),
        "{}",
        stderr(&o)
    );
    assert_ne!(read(tmp.path(), "tls.crt"), old);
    verify(
        &read(tmp.path(), "tls.crt"),
        &read(tmp.path(), "ca.crt"),
        "portcullis-webhook",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
}

#[test]
fn rotate_on_an_empty_directory_creates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let o = run(&[
        "rotate",
        "--dir",
        dir.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    verify(
        &read(&dir, "tls.crt"),
        &read(&dir, "ca.crt"),
        "portcullis-webhook.portcullis-system",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
}

#[test]
fn bad_state_fails_with_a_message_that_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    assert!(run(&["create", "--dir", d]).status.success());
    let good = read(tmp.path(), "tls.crt");
    std::fs::write(
        tmp.path().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let o = run(&["rotate", "--dir", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tls.crt: not a readable PEM certificate"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));

    std::fs::write(tmp.path().join("tls.crt"), good).unwrap();
    std::fs::remove_file(tmp.path().join("ca.key")).unwrap();
    let o = run(&["rotate", "--dir", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("incomplete certificate state: missing ca.key"),
        "{}",
        stderr(&o)
    );

    let o = run(&["create", "--dir", d, "--validity", "1y"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects the flag");
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
}

#[test]
fn patch_fills_a_manifest_from_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("c");
    assert!(
        run(&["create", "--dir", d.to_str().unwrap()])
            .status
            .success()
    );
    let manifest = tmp.path().join("m.yaml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/portcullis.yaml"),
        &manifest,
    )
    .unwrap();
    let out = tmp.path().join("out.yaml");
    let o = run(&[
        "patch",
        "--dir",
        d.to_str().unwrap(),
        "--in",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    // Three webhooks and the eight CRDs converting through the webhook.
    assert_eq!(text.matches("caBundle:").count(), 11, "{text}");
    let o = run(&[
        "patch",
        "--dir",
        tmp.path().join("none").to_str().unwrap(),
        "--in",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no certificates here"),
        "{}",
        stderr(&o)
    );
}
