//! `portcullis-webhook`: the mutating admission webhook of Portcullis (SPEC A1–A10, B §1).
//!
//! Not built yet: this binary only describes itself and refuses to run, so that nothing mistakes
//! it for a working webhook.

use clap::Parser;

/// Portcullis admission webhook (not implemented yet).
///
/// Will serve `/mutate-v1-pod`, `/mutate-workloads` and `/validate-keptntaskdefinition` over HTTPS,
/// resolving `keptn.sh/*` metadata into KeptnWorkloads and KeptnAppCreationRequests and adding the
/// scheduling gate `keptn-prechecks-gate` to pods of enabled namespaces.
#[derive(Debug, Parser)]
#[command(name = "portcullis-webhook", version)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!(
        "portcullis-webhook is not implemented yet: it arrives with the \"admission webhook\" issue; nothing is served"
    );
    std::process::ExitCode::from(2)
}
