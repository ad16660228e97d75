//! Fuzz target `admission`: the input is an HTTP request body, posted to each admission path of
//! the real router (`/mutate-v1-pod`, `/mutate-workloads`, `/validate-keptntaskdefinition`)
//! against the merged world of the golden fixtures; every property of
//! `portcullis_fuzz::oracle::check_all` must hold (a violation panics, which libFuzzer reports
//! as a crash with the input saved under fuzz/artifacts/admission/).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::oracle::{self, World};

const PATHS: [&str; 3] = [
    "/mutate-v1-pod",
    "/mutate-workloads",
    "/validate-keptntaskdefinition",
];

static STATE: LazyLock<(tokio::runtime::Runtime, World)> =
    LazyLock::new(|| (oracle::runtime(), portcullis_fuzz::golden_world()));

fuzz_target!(|data: &[u8]| {
    let (rt, world) = &*STATE;
    for path in PATHS {
        if let Err(violation) = oracle::check_all(rt, world, path, data) {
            panic!("{path}: {violation}");
        }
    }
});
