//! `portcullis-certs`: certificate bootstrap and rotation for the webhook (not built yet).

use clap::Parser;

/// Portcullis certificate tool (not implemented yet): will create a CA and the webhook's serving
/// certificate and write them with the caBundle into the manifests or a Secret.
#[derive(Debug, Parser)]
#[command(name = "portcullis-certs", version)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("portcullis-certs is not implemented yet: it arrives with the \"Deployable\" issue");
    std::process::ExitCode::from(2)
}
