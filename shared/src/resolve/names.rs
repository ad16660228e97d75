//! Resource names (B §1.6 with A18) and the app version hash (B §3.1).

use sha2::{Digest, Sha256};

/// Longest name Kubernetes accepts for a DNS-1123 subdomain (and Keptn's `maxLen`).
pub const MAX_NAME_LEN: usize = 253;
/// Keptn's starting minimum length of a shortened part.
const MIN_PART_LEN: usize = 80;

/// Keptn's `CreateResourceName(253, 80, parts...)` (B §1.6) followed by the A18 clean-up.
///
/// Parts other than the last are shortened (never below the minimum part length) until the
/// `-`-joined string fits in 253 bytes; the result is lower-cased with `_` replaced by `-`. Where
/// that is not a valid DNS-1123 subdomain, characters outside `[a-z0-9.-]` become `-` and leading
/// and trailing non-alphanumerics are trimmed (A18). The result can still be invalid (empty,
/// longer than 253 when the last part alone is too long, or `..`); [`is_dns1123_subdomain`] tells.
///
/// Lengths are counted in bytes as Keptn does; a cut never splits a UTF-8 character (it falls on
/// the preceding boundary, so such a part may end up a few bytes shorter than Keptn's).
pub fn create_resource_name<S: AsRef<str>>(parts: &[S]) -> String {
    sanitize_name(&keptn_resource_name(parts))
}

/// Keptn's name before A18: shortened, lower-cased, `_` replaced, nothing else touched.
fn keptn_resource_name<S: AsRef<str>>(parts: &[S]) -> String {
    let mut parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    let mut min_part_len = MIN_PART_LEN;
    while parts.len() * min_part_len > MAX_NAME_LEN {
        min_part_len /= 2;
    }
    for i in 0..parts.len().saturating_sub(1) {
        let joined_len = joined_len(&parts);
        if joined_len <= MAX_NAME_LEN {
            break;
        }
        let part = parts[i];
        if part.len() <= min_part_len {
            continue;
        }
        let excess = joined_len - MAX_NAME_LEN;
        let keep = part.len().saturating_sub(excess).max(min_part_len);
        parts[i] = &part[..floor_char_boundary(part, keep)];
    }
    parts.join("-").to_lowercase().replace('_', "-")
}

fn joined_len(parts: &[&str]) -> usize {
    parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1)
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// A18: keep a valid name as it is; otherwise map characters outside `[a-z0-9.-]` to `-` and trim
/// the ends to alphanumerics.
fn sanitize_name(name: &str) -> String {
    if is_dns1123_subdomain(name) {
        return name.to_owned();
    }
    let mapped: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            _ => '-',
        })
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Whether `name` is a DNS-1123 subdomain as the API server checks `metadata.name`: at most 253
/// characters, dot-separated labels of `[a-z0-9-]` that start and end alphanumeric.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

/// KeptnApp / KeptnAppCreationRequest name: `CRN(appValue)` (B §1.6).
pub fn app_name(app_value: &str) -> String {
    create_resource_name(&[app_value])
}

/// KeptnWorkload name: `CRN(appName, workloadValue)`, e.g. `waiter-waiter`.
pub fn workload_name(app_name: &str, workload_value: &str) -> String {
    create_resource_name(&[app_name, workload_value])
}

/// KeptnWorkloadVersion name: `CRN(workloadName, version)`, e.g. `waiter-waiter-0.4`.
pub fn kwv_name(workload_name: &str, version: &str) -> String {
    create_resource_name(&[workload_name, version])
}

/// `Hash(generation)` of B §1.6: the first 4 bytes of SHA-256 of the decimal generation, in hex
/// (1 -> `6b86b273`).
pub fn generation_hash(generation: i64) -> String {
    let digest = Sha256::digest(generation.to_string().as_bytes());
    hex(&digest[..4])
}

/// KeptnAppVersion name: `CRN(appName, appVersion, Hash(app generation))`.
pub fn kav_name(app_name: &str, app_version: &str, generation: i64) -> String {
    create_resource_name(&[app_name, app_version, &generation_hash(generation)])
}

/// KeptnTask name: `CRN(checkType, taskDefinition, suffix)`. Keptn draws `suffix` at random from
/// 10000..=99998; Portcullis derives it (A15), so it is the caller's.
pub fn task_name(check_type: &str, task_definition: &str, suffix: u32) -> String {
    create_resource_name(&[check_type, task_definition, &suffix.to_string()])
}

/// KeptnEvaluation name: `CRN(checkType, evaluationDefinition, suffix)`; see [`task_name`].
pub fn evaluation_name(check_type: &str, evaluation_definition: &str, suffix: u32) -> String {
    create_resource_name(&[check_type, evaluation_definition, &suffix.to_string()])
}

/// Job name of a KeptnTask: `CRN(taskName, suffix)`; see [`task_name`].
pub fn job_name(task_name: &str, suffix: u32) -> String {
    create_resource_name(&[task_name, &suffix.to_string()])
}

/// The KeptnApp `spec.version` discovery computes (B §3.1) from its workloads, given as
/// (full KeptnWorkload name, workload version): one workload -> its version; otherwise the first
/// 10 hex characters of SHA-256 over `<name>-<version>` of the workloads sorted by name (none ->
/// `e3b0c44298`, the hash of nothing). Sorting happens here, the order given does not matter.
pub fn app_version<N: AsRef<str>, V: AsRef<str>>(workloads: &[(N, V)]) -> String {
    if let [(_, version)] = workloads {
        return version.as_ref().to_owned();
    }
    let mut sorted: Vec<(&str, &str)> = workloads
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (name, version) in sorted {
        hasher.update(name.as_bytes());
        hasher.update(b"-");
        hasher.update(version.as_bytes());
    }
    let mut digest = hex(&hasher.finalize());
    digest.truncate(10);
    digest
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_from_spec_examples() {
        let rows = [
            (
                "name_single_service_workload",
                workload_name("waiter", "waiter"),
                "waiter-waiter",
            ),
            (
                "name_kwv",
                kwv_name("waiter-waiter", "0.4"),
                "waiter-waiter-0.4",
            ),
            (
                "name_kwv_underscore_becomes_dash",
                kwv_name("waiter-waiter", "0.4.0_1"),
                "waiter-waiter-0.4.0-1",
            ),
            ("name_app_lower_cased", app_name("Waiter_App"), "waiter-app"),
            (
                "name_kav_generation_1",
                kav_name("waiter", "0.4", 1),
                "waiter-0.4-6b86b273",
            ),
            (
                "name_kav_generation_2",
                kav_name("waiter", "0.4", 2),
                "waiter-0.4-d4735e3a",
            ),
            (
                "name_task",
                task_name("pre", "pre-deployment-hello", 12345),
                "pre-pre-deployment-hello-12345",
            ),
            (
                "name_evaluation",
                evaluation_name("post", "Check_Errors", 10000),
                "post-check-errors-10000",
            ),
            (
                "name_job",
                job_name("pre-pre-deployment-hello-12345", 99998),
                "pre-pre-deployment-hello-12345-99998",
            ),
        ];
        for (rule, got, want) in rows {
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn generation_hash_spec_values() {
        for (generation, want) in [(1, "6b86b273"), (2, "d4735e3a"), (3, "4e074085")] {
            assert_eq!(generation_hash(generation), want, "generation {generation}");
        }
    }

    #[test]
    fn crn_short_names_are_joined_unchanged() {
        assert_eq!(create_resource_name(&["a", "b", "c"]), "a-b-c");
        assert_eq!(create_resource_name::<&str>(&[]), "");
    }

    /// 3 parts: minPartLen stays 80; the first part is cut by exactly the excess.
    #[test]
    fn crn_three_parts_cut_first_part_by_excess() {
        let a = "a".repeat(200);
        let b = "b".repeat(20);
        let c = "c".repeat(30);
        // 200 + 20 + 30 + 2 = 252: fits, nothing cut.
        assert_eq!(create_resource_name(&[&a, &b, &c]).len(), 252);
        let a = "a".repeat(210);
        // 210 + 20 + 30 + 2 = 262: cut 9 off the first part.
        let got = create_resource_name(&[&a, &b, &c]);
        assert_eq!(got, format!("{}-{b}-{c}", "a".repeat(201)));
        assert_eq!(got.len(), MAX_NAME_LEN);
    }

    /// 3 parts: a cut never goes below 80, the next part is cut too; the last part never is.
    #[test]
    fn crn_three_parts_floor_80_then_next_part() {
        let a = "a".repeat(150);
        let b = "b".repeat(150);
        let c = "c".repeat(10);
        // 150 + 150 + 10 + 2 = 312, excess 59 -> a cut to 91 (not below 80), fits.
        let got = create_resource_name(&[&a, &b, &c]);
        assert_eq!(got, format!("{}-{b}-{c}", "a".repeat(91)));
        let a = "a".repeat(200);
        let b = "b".repeat(200);
        // 200 + 200 + 10 + 2 = 412: a -> 80 (292), b cut by 39 -> 161 (253).
        let got = create_resource_name(&[&a, &b, &c]);
        assert_eq!(got, format!("{}-{}-{c}", "a".repeat(80), "b".repeat(161)));
        // Last part alone too long: the earlier parts stop at 80 and the result stays too long.
        let c = "c".repeat(200);
        let got = create_resource_name(&[&a, &b, &c]);
        assert_eq!(got, format!("{}-{}-{c}", "a".repeat(80), "b".repeat(80)));
        assert!(!is_dns1123_subdomain(&got));
    }

    /// 4 parts: 4 * 80 > 253, so minPartLen halves to 40; parts at or below it are skipped.
    #[test]
    fn crn_four_parts_min_part_len_halves_to_40() {
        let a = "a".repeat(30);
        let b = "b".repeat(150);
        let c = "c".repeat(100);
        let d = "d".repeat(20);
        // 30 + 150 + 100 + 20 + 3 = 303: a (<= 40) skipped, b cut by the excess 50 to 100.
        let got = create_resource_name(&[&a, &b, &c, &d]);
        assert_eq!(got, format!("{a}-{}-{c}-{d}", "b".repeat(100)));
        // 30 + 100 + 200 + 20 + 3 = 353, excess 100 > 100 - 40: b -> 40 (293), then c -> 160.
        let b = "b".repeat(100);
        let c = "c".repeat(200);
        let got = create_resource_name(&[&a, &b, &c, &d]);
        assert_eq!(
            got,
            format!("{a}-{}-{}-{d}", "b".repeat(40), "c".repeat(160))
        );
        assert_eq!(got.len(), MAX_NAME_LEN);
    }

    #[test]
    fn crn_min_part_len_halving_rule() {
        // 5 parts: 5 * 80 > 253 but 5 * 40 = 200 <= 253 -> 40.
        // 100 * 3 + 1 + 1 + 4 = 306, excess 53: first part 100 -> 47.
        let x = |n: usize| "x".repeat(n);
        let (x100, x60) = (x(100), x(60));
        let got = create_resource_name(&[&x100, &x100, &x100, "y", "z"]);
        assert_eq!(got, format!("{}-{x100}-{x100}-y-z", x(47)));
        // 7 parts: 7 * 40 = 280 > 253 -> 20. 60 * 5 + 2 + 6 = 308, excess 55:
        // first part floors at 20 (268), the second is cut by the remaining 15 to 45.
        let got = create_resource_name(&[&x60, &x60, &x60, &x60, &x60, "y", "z"]);
        assert_eq!(got, format!("{}-{}-{x60}-{x60}-{x60}-y-z", x(20), x(45)));
        assert_eq!(got.len(), MAX_NAME_LEN);
    }

    #[test]
    fn crn_cut_respects_utf8_boundaries() {
        let a = "é".repeat(150); // 300 bytes
        // 302 bytes, excess 49: the cut at byte 251 falls inside a character and moves to 250;
        // A18 then turns every `é` into `-` and trims them away.
        assert_eq!(create_resource_name(&[a.as_str(), "b"]), "b");
        assert_eq!(keptn_resource_name(&[a.as_str(), "b"]).len(), 252);
    }

    #[test]
    fn a18_sanitising_table() {
        let rows: [(&str, &[&str], &str); 9] = [
            (
                "a18_valid_name_unchanged",
                &["my-app.v1", "w"],
                "my-app.v1-w",
            ),
            (
                "a18_slash_becomes_dash",
                &["w-w", "5000/app"],
                "w-w-5000-app",
            ),
            (
                "a18_plus_becomes_dash",
                &["w-w", "1.0.0+build.5"],
                "w-w-1.0.0-build.5",
            ),
            (
                "a18_colon_becomes_dash",
                &["w-w", "sha256:abc"],
                "w-w-sha256-abc",
            ),
            (
                "a18_space_and_non_ascii_become_dash",
                &["my app", "ü"],
                "my-app",
            ),
            (
                "a18_ends_trimmed_to_alphanumerics",
                &["-.app", "v1."],
                "app-v1",
            ),
            ("a18_uppercase_only_lower_cased", &["MyApp"], "myapp"),
            (
                "a18_underscore_replaced_by_keptn_rule",
                &["my_app"],
                "my-app",
            ),
            ("a18_all_invalid_gives_empty", &["/+:"], ""),
        ];
        for (rule, parts, want) in rows {
            assert_eq!(create_resource_name(parts), want, "{rule}");
        }
    }

    #[test]
    fn dns1123_subdomain_table() {
        let rows = [
            ("a", true),
            ("a-b.c-d", true),
            ("0.1", true),
            ("", false),
            ("A", false),
            ("a..b", false),
            ("a.-b", false),
            ("-a", false),
            ("a-", false),
            ("a_b", false),
            ("a/b", false),
        ];
        for (name, want) in rows {
            assert_eq!(is_dns1123_subdomain(name), want, "{name:?}");
        }
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }

    /// The SPEC example: the six podtato-head workloads (app `podtato-head`, so full names are
    /// `podtato-head-podtato-head-<part>`) at 0.1.0.
    #[test]
    fn app_version_podtato_head_six_workloads() {
        let parts = [
            "entry",
            "hat",
            "left-leg",
            "left-arm",
            "right-leg",
            "right-arm",
        ];
        let workloads: Vec<(String, &str)> = parts
            .iter()
            .map(|p| {
                (
                    workload_name("podtato-head", &format!("podtato-head-{p}")),
                    "0.1.0",
                )
            })
            .collect();
        assert_eq!(workloads[0].0, "podtato-head-podtato-head-entry");
        assert_eq!(app_version(&workloads), "95a0b0ddca");
        let mut reversed = workloads.clone();
        reversed.reverse();
        assert_eq!(
            app_version(&reversed),
            "95a0b0ddca",
            "app_version_sorts_by_name"
        );
    }

    #[test]
    fn app_version_single_and_empty() {
        assert_eq!(
            app_version(&[("waiter-waiter", "0.4")]),
            "0.4",
            "app_version_one_workload"
        );
        assert_eq!(
            app_version::<&str, &str>(&[]),
            "e3b0c44298",
            "app_version_no_workloads"
        );
        let two = app_version(&[("a-a", "1"), ("a-b", "2")]);
        assert_eq!(two.len(), 10);
        assert_ne!(two, app_version(&[("a-a", "1"), ("a-b", "3")]));
    }
}
