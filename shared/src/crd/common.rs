//! Types shared by several kinds: the phase state, per-item status, durations, and the schema
//! helpers the kinds' derives refer to.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pattern Keptn validates every duration string against (kept verbatim, including its loose
/// alternation, so that exactly the same objects are accepted).
pub const DURATION_PATTERN: &str = r"^0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// State of a phase, a task, an evaluation or a whole version.
///
/// On the wire a plain string; the schema has no enum validation, so any string can be stored.
/// A value this version does not know is kept verbatim in [`KeptnState::Other`], so reading and
/// writing an object back never loses it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeptnState {
    #[default]
    Pending,
    Progressing,
    Succeeded,
    Failed,
    Unknown,
    Deprecated,
    Warning,
    /// A string that is none of the above (including the empty string).
    Other(String),
}

impl KeptnState {
    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            KeptnState::Pending => "Pending",
            KeptnState::Progressing => "Progressing",
            KeptnState::Succeeded => "Succeeded",
            KeptnState::Failed => "Failed",
            KeptnState::Unknown => "Unknown",
            KeptnState::Deprecated => "Deprecated",
            KeptnState::Warning => "Warning",
            KeptnState::Other(s) => s,
        }
    }

    /// Parses the wire form; never fails.
    pub fn parse(s: &str) -> KeptnState {
        match s {
            "Pending" => KeptnState::Pending,
            "Progressing" => KeptnState::Progressing,
            "Succeeded" => KeptnState::Succeeded,
            "Failed" => KeptnState::Failed,
            "Unknown" => KeptnState::Unknown,
            "Deprecated" => KeptnState::Deprecated,
            "Warning" => KeptnState::Warning,
            other => KeptnState::Other(other.to_owned()),
        }
    }

    /// Keptn's notion of "done": Succeeded, Failed, Deprecated or Warning.
    pub fn is_completed(&self) -> bool {
        matches!(
            self,
            KeptnState::Succeeded
                | KeptnState::Failed
                | KeptnState::Deprecated
                | KeptnState::Warning
        )
    }

    /// Succeeded, or Warning when deployments are not blocking (`blockDeployment: false`).
    pub fn is_succeeded(&self, blocking: bool) -> bool {
        match self {
            KeptnState::Succeeded => true,
            KeptnState::Warning => !blocking,
            _ => false,
        }
    }
}

impl fmt::Display for KeptnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KeptnState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeptnState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(KeptnState::parse(&s))
    }
}

impl JsonSchema for KeptnState {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "KeptnState".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

/// A Go-style duration string (`"5m"`, `"1h30m"`, `"500ms"`), kept verbatim.
///
/// The schema carries Keptn's [`DURATION_PATTERN`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub String);

impl Duration {
    /// Wraps a duration string without checking it.
    pub fn new(s: impl Into<String>) -> Self {
        Duration(s.into())
    }

    /// The string as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the string as Go's `time.ParseDuration` does (the operator reads these fields with
    /// it), limited to non-negative values. The schema pattern is looser than the parser (it
    /// accepts anything starting with `0`), so a stored value can still fail here.
    pub fn to_std(&self) -> Result<std::time::Duration, DurationError> {
        parse_go_duration(&self.0)
    }

    /// The duration as Keptn writes a `metav1.Duration` it copied (Go's `time.Duration.String`:
    /// `5m` becomes `5m0s`, `90s` becomes `1m30s`); a string Go could not parse is kept as it is.
    pub fn go_formatted(&self) -> Duration {
        match self.to_std() {
            Ok(d) => Duration(format_go_duration(d)),
            Err(_) => self.clone(),
        }
    }
}

/// `d` as Go's `time.Duration.String` prints it: `0s`, `1.5ms`, `30s`, `1m30s`, `1h0m0s`.
pub fn format_go_duration(d: std::time::Duration) -> String {
    const SECOND: u128 = 1_000_000_000;
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < SECOND {
        let (per_unit, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "\u{b5}s"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", decimal(nanos, per_unit));
    }
    let hours = nanos / (3_600 * SECOND);
    let minutes = nanos / (60 * SECOND) % 60;
    let seconds = decimal(nanos % (60 * SECOND), SECOND);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / per_unit` in decimal, the fraction without trailing zeros.
fn decimal(value: u128, per_unit: u128) -> String {
    let whole = value / per_unit;
    let fraction = value % per_unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = per_unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A duration string that Go's `time.ParseDuration` would reject, or a negative one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("negative duration {0:?}")]
    Negative(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} out of range")]
    Overflow(String),
}

/// Nanoseconds per unit, as Go's `time` package names them.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

fn parse_go_duration(input: &str) -> Result<std::time::Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut rest = input;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Go rejects anything beyond i64 nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        let overflow = || DurationError::Overflow(input.to_owned());
        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut nanos = whole.checked_mul(per_unit).ok_or_else(overflow)?;
        // Fractions beyond nanosecond precision are truncated, as in Go.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_digits.bytes() {
            if scale > MAX_NANOS {
                break;
            }
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        nanos += frac * per_unit / scale;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(overflow)?;
        rest = after;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(std::time::Duration::new(secs, sub))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN })
    }
}

/// Status of one task or evaluation of a phase (KeptnAppVersion / KeptnWorkloadVersion status).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemStatus {
    /// Name of the KeptnTaskDefinition / KeptnEvaluationDefinition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub definition_name: String,
    #[serde(default)]
    pub status: KeptnState,
    /// Name of the KeptnTask / KeptnEvaluation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}

/// Schema transform for fields that serde defaults when absent but whose CRD field has no
/// `default` in Keptn (the API server must not materialise them).
pub(crate) fn no_schema_default(schema: &mut Schema) {
    schema.remove("default");
}

/// Lists `fields` as required in an object schema even though serde defaults them (a serde
/// default otherwise makes schemars leave the field out of `required`).
pub(crate) fn require(schema: &mut Schema, fields: &[&str]) {
    let obj = schema.ensure_object();
    let required = obj
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let serde_json::Value::Array(list) = required {
        for f in fields {
            if !list.iter().any(|v| v == f) {
                list.push(serde_json::Value::String((*f).to_owned()));
            }
        }
    }
}

pub(crate) fn default_revision() -> i64 {
    1
}

pub(crate) fn default_retries_i32() -> i32 {
    10
}

pub(crate) fn default_retries() -> i64 {
    10
}

pub(crate) fn default_timeout() -> Duration {
    Duration::new("5m")
}

pub(crate) fn default_retry_interval() -> Duration {
    Duration::new("5s")
}

pub(crate) fn default_true() -> bool {
    true
}
