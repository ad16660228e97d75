//! Durations written on the command line: `365d`, `720h`, `90m`, `30s`.

use time::Duration;

use crate::CertError;

/// Reads a whole number followed by one unit (`d`, `h`, `m`, `s`); the result must be positive.
pub fn parse_duration(input: &str) -> Result<Duration, CertError> {
    let err = |reason: &str| CertError::Duration {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| err("a unit is missing"))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(err("a number must come first"));
    }
    let n: i64 = number.parse().map_err(|_| err("the number is too large"))?;
    let seconds_per_unit = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(err("unknown unit")),
    };
    let seconds = n
        .checked_mul(seconds_per_unit)
        .ok_or_else(|| err("the duration is too large"))?;
    if seconds == 0 {
        return Err(err("the duration must be positive"));
    }
    Ok(Duration::seconds(seconds))
}

/// Writes a duration back in the largest unit that divides it, as [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    for (unit, per) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s != 0 && s % per == 0 {
            return format!("{}{unit}", s / per);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_unit() {
        assert_eq!(parse_duration("365d").unwrap(), Duration::days(365));
        assert_eq!(parse_duration("720h").unwrap(), Duration::hours(720));
        assert_eq!(parse_duration("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration(" 30s ").unwrap(), Duration::seconds(30));
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "",
            "d",
            "12",
            "1y",
            "1.5d",
            "-3d",
            "0h",
            "99999999999999999999d",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(matches!(e, CertError::Duration { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["365d", "25h", "90m", "61s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
