//! The state directory: `ca.crt`, `ca.key`, `tls.crt`, `tls.key` (the only I/O of the library).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::CertError;
use crate::rotation::Material;

/// The CA bundle file.
pub const CA_CRT: &str = "ca.crt";
/// The CA key file.
pub const CA_KEY: &str = "ca.key";
/// The serving certificate file.
pub const TLS_CRT: &str = "tls.crt";
/// The serving key file.
pub const TLS_KEY: &str = "tls.key";

const FILES: [&str; 4] = [CA_CRT, CA_KEY, TLS_CRT, TLS_KEY];

/// Reads the four files; `None` when none of them exists. Some but not all is an error, as is a
/// file that cannot be read (the contents are checked by [`crate::rotation::rotate`]).
pub fn load(dir: &Path) -> Result<Option<Material>, CertError> {
    let mut texts: Vec<Option<String>> = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| CertError::CertificatePem {
                    what: path.display().to_string(),
                    reason: "not UTF-8 text (DER files are not read; convert to PEM)".to_string(),
                })?;
                texts.push(Some(text));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => texts.push(None),
            Err(source) => return Err(CertError::Io { path, source }),
        }
    }
    let (present, missing): (Vec<_>, Vec<_>) =
        FILES.iter().zip(&texts).partition(|(_, t)| t.is_some());
    if present.is_empty() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(CertError::IncompleteState {
            dir: dir.to_path_buf(),
            missing: missing.iter().map(|(n, _)| n.to_string()).collect(),
            present: present.iter().map(|(n, _)| n.to_string()).collect(),
        });
    }
    let mut it = texts.into_iter().flatten();
    let (Some(ca_bundle_pem), Some(ca_key_pem), Some(cert_pem), Some(key_pem)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Ok(None);
    };
    Ok(Some(Material {
        ca_bundle_pem,
        ca_key_pem,
        cert_pem,
        key_pem,
    }))
}

/// Writes the files that differ from what is on disk, each atomically (temporary file, then
/// rename); keys are readable by the owner only. Returns the names written.
pub fn save(dir: &Path, material: &Material) -> Result<Vec<&'static str>, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, text, private) in [
        (CA_CRT, &material.ca_bundle_pem, false),
        (CA_KEY, &material.ca_key_pem, true),
        (TLS_CRT, &material.cert_pem, false),
        (TLS_KEY, &material.key_pem, true),
    ] {
        if write_if_changed(&dir.join(name), text.as_bytes(), private)? {
            written.push(name);
        }
    }
    Ok(written)
}

/// Writes `bytes` to `path` unless it already holds exactly them; returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8], private: bool) -> Result<bool, CertError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = temp_name(path);
    // A stale temporary file would keep its old mode; start from nothing.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(true)
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}
