//! What a KeptnMetric's status becomes after a fetch: pure, so the rules (the last good value
//! is kept, the raw answer is bounded, past results are capped) are tested without a server.

use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared::crd::{IntervalResult, KeptnMetricSpec, KeptnMetricStatus};

/// Largest raw answer kept in `status.rawValue`; a larger one is left out (the value stays).
pub const MAX_RAW_BYTES: usize = 1024 * 1024;

/// A fetch's result: the value and the provider's raw answer, or why there is none.
pub type Outcome = Result<(String, Vec<u8>), String>;

/// The status after a fetch at `now`. A failure keeps the last good value and its
/// `lastUpdated`, so evaluations can tell how old it is, and says why in `errMsg`.
pub fn next_status(
    current: Option<&KeptnMetricStatus>,
    spec: &KeptnMetricSpec,
    outcome: Outcome,
    now: Timestamp,
) -> KeptnMetricStatus {
    let mut status = current.cloned().unwrap_or_default();
    match outcome {
        Ok((value, raw)) => {
            status.raw_value = if raw.len() <= MAX_RAW_BYTES {
                base64::engine::general_purpose::STANDARD.encode(&raw)
            } else {
                tracing::warn!(
                    bytes = raw.len(),
                    "raw answer too large for status.rawValue"
                );
                String::new()
            };
            status.last_updated = Some(Time(now));
            status.err_msg = String::new();
            if let Some(range) = &spec.range
                && let Some(keep) = range.stored_results.filter(|n| *n > 0)
            {
                status.interval_results.push(IntervalResult {
                    value: value.clone(),
                    range: Some(range.clone()),
                    last_updated: Time(now),
                    err_msg: String::new(),
                });
                let keep = usize::try_from(keep).unwrap_or(usize::MAX);
                let excess = status.interval_results.len().saturating_sub(keep);
                status.interval_results.drain(..excess);
            }
            status.value = value;
        }
        Err(message) => status.err_msg = message,
    }
    status
}

/// `fetchIntervalSeconds` as a duration, at least one second, so a metric never spins.
pub fn fetch_interval(fetch_interval_seconds: u64) -> Duration {
    Duration::from_secs(fetch_interval_seconds.max(1))
}

/// How long until the next fetch is due: `fetchIntervalSeconds` after the last successful one
/// (at once when there was none); at least one second, so a metric never spins.
pub fn next_fetch_in(
    status: Option<&KeptnMetricStatus>,
    fetch_interval_seconds: u64,
    now: Timestamp,
) -> Duration {
    let interval = fetch_interval(fetch_interval_seconds);
    let Some(last) = status.and_then(|s| s.last_updated.as_ref()) else {
        return Duration::ZERO;
    };
    let elapsed = now.duration_since(last.0).unsigned_abs();
    interval.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use shared::crd::{ProviderRef, RangeSpec};

    use super::*;

    fn spec(range: Option<RangeSpec>) -> KeptnMetricSpec {
        KeptnMetricSpec {
            provider: ProviderRef {
                name: "prom".into(),
            },
            query: "up".into(),
            fetch_interval_seconds: 10,
            range,
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("valid")
    }

    #[test]
    fn a_fetched_value_is_written_with_its_time_and_raw_answer() {
        let s = next_status(None, &spec(None), Ok(("0.5".into(), b"{}".to_vec())), at(0));
        assert_eq!(s.value, "0.5");
        assert_eq!(s.raw_value, "e30=");
        assert_eq!(s.last_updated, Some(Time(at(0))));
        assert_eq!(s.err_msg, "");
    }

    #[test]
    fn a_failure_keeps_the_last_good_value_and_its_time() {
        let good = next_status(None, &spec(None), Ok(("0.5".into(), Vec::new())), at(0));
        let failed = next_status(Some(&good), &spec(None), Err("unreachable".into()), at(30));
        assert_eq!(failed.value, "0.5");
        assert_eq!(failed.last_updated, Some(Time(at(0))));
        assert_eq!(failed.err_msg, "unreachable");
        let recovered = next_status(
            Some(&failed),
            &spec(None),
            Ok(("0.6".into(), Vec::new())),
            at(40),
        );
        assert_eq!(recovered.err_msg, "", "a success clears the error");
        assert_eq!(recovered.value, "0.6");
    }

    #[test]
    fn an_oversized_raw_answer_is_left_out_but_the_value_is_kept() {
        let raw = vec![b'x'; MAX_RAW_BYTES + 1];
        let s = next_status(None, &spec(None), Ok(("1".into(), raw)), at(0));
        assert_eq!((s.value.as_str(), s.raw_value.as_str()), ("1", ""));
        let fits = next_status(
            None,
            &spec(None),
            Ok(("1".into(), vec![0; MAX_RAW_BYTES])),
            at(0),
        );
        assert!(!fits.raw_value.is_empty());
    }

    #[test]
    fn stored_results_keep_the_newest_up_to_the_limit() {
        let range = RangeSpec {
            interval: "5m".into(),
            step: "1m".into(),
            aggregation: "max".into(),
            stored_results: Some(2),
        };
        let spec = spec(Some(range));
        let mut status = None;
        for (i, v) in ["1", "2", "3"].into_iter().enumerate() {
            let t = at(i64::try_from(i).unwrap_or(0) * 10);
            status = Some(next_status(
                status.as_ref(),
                &spec,
                Ok((v.into(), Vec::new())),
                t,
            ));
        }
        let kept: Vec<_> = status
            .iter()
            .flat_map(|s| s.interval_results.iter().map(|r| r.value.as_str()))
            .collect();
        assert_eq!(kept, ["2", "3"]);
    }

    #[test]
    fn fetches_are_due_an_interval_after_the_last_success() {
        let good = next_status(None, &spec(None), Ok(("1".into(), Vec::new())), at(0));
        assert_eq!(
            next_fetch_in(None, 10, at(0)),
            Duration::ZERO,
            "never fetched"
        );
        assert_eq!(
            next_fetch_in(Some(&good), 10, at(4)),
            Duration::from_secs(6)
        );
        assert_eq!(next_fetch_in(Some(&good), 10, at(11)), Duration::ZERO);
        assert_eq!(
            next_fetch_in(Some(&good), 0, at(0)),
            Duration::from_secs(1),
            "at least a second"
        );
    }
}
