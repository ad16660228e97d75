//! `portcullis-gate`: the lifecycle controllers of Portcullis (SPEC A11–A16, B §3–§7).
//!
//! Not built yet: this binary only describes itself and refuses to run, so that nothing mistakes
//! it for a working controller.

use clap::Parser;

/// Portcullis gate service (not implemented yet).
///
/// Will run the KeptnApp/KeptnWorkload lifecycle controllers, execute pre- and post-deployment
/// tasks and evaluations, and remove the scheduling gate `keptn-prechecks-gate` from pods whose
/// workload version has passed its pre-deployment checks.
#[derive(Debug, Parser)]
#[command(name = "portcullis-gate", version)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!(
        "portcullis-gate is not implemented yet: it arrives with the \"gate service\" issue; nothing is reconciled"
    );
    std::process::ExitCode::from(2)
}
