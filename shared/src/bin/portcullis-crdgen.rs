//! Writes Portcullis's CRDs as `<dir>/<plural>.<group>.yaml`, or with `--check` verifies that
//! the committed files match what the types generate. Their home is the Helm chart
//! (`charts/portcullis/files/crds`, `make crds`), which fills in the install namespace and renders
//! `deploy/crds` from them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "portcullis-crdgen",
    version,
    about = "Generate or check Portcullis's CRD manifests"
)]
struct Args {
    /// Do not write; exit non-zero listing every file that is missing or differs.
    #[arg(long)]
    check: bool,
    /// Directory holding the CRD manifests.
    dir: PathBuf,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let files = render()?;
    if args.check {
        let stale = check(&args.dir, &files)?;
        if stale.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for problem in &stale {
            eprintln!("{problem}");
        }
        eprintln!("CRDs are out of date; regenerate with `make crds`");
        return Ok(ExitCode::FAILURE);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    for (name, content) in &files {
        let path = args.dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// File name and YAML text of every CRD.
fn render() -> anyhow::Result<Vec<(String, String)>> {
    let mut files = shared::crd::all()
        .iter()
        .map(|crd| {
            let yaml = serde_yaml::to_string(crd)
                .with_context(|| format!("serialising {}", shared::crd::file_name(crd)))?;
            Ok((shared::crd::file_name(crd), format!("---\n{yaml}")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    files.sort();
    Ok(files)
}

/// One line per file that is missing or differs from `files`.
fn check(dir: &Path, files: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for (name, want) in files {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(have) if &have == want => {}
            Ok(_) => problems.push(format!("differs: {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("missing: {}", path.display()))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(problems)
}
