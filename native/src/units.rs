//! Sizes, durations and percentages as users write them in agent options: `64m`, `512k`, `30s`,
//! `500ms`, `10%`. Size suffixes are binary (`k` = 1024), as in `-Xmx` and glibc's tunables
//! documentation. The grammar and the bounds here are the ones the Java side checks options
//! against before they reach the core (`Options.java` names these constants): a value one side
//! takes and the other refuses would cost an option its default on one side only.

use crate::error::{Error, Result};

/// The largest size any option takes: 1 PiB, beyond any memory a JVM holds, and far enough from
/// `u64::MAX` (and Java's `long`) that no arithmetic on it overflows.
pub const MAX_SIZE_BYTES: u64 = 1 << 50;
/// The longest duration any option takes: 365 days.
pub const MAX_DURATION_MS: u64 = 365 * 24 * 3_600_000;

/// The smallest report file before rotation (`reportMaxSize`): a few samples' worth.
pub const MIN_REPORT_FILE_BYTES: u64 = 16 << 10;
/// The most report files kept (`reportFiles`), the current one included; the timeline looks for
/// no more rotated files than this.
pub const MAX_REPORT_FILES: usize = 1000;

/// The fewest bytes between two native call site samples (`nativeSitesRate`): below this the
/// sampler takes most small allocations, and its cost is no longer a sampler's.
pub const MIN_NATIVE_SAMPLE_BYTES: u64 = 4 << 10;
/// The most bytes between two native call site samples: beyond this a leak of a few hundred
/// MiB is a handful of samples.
pub const MAX_NATIVE_SAMPLE_BYTES: u64 = 1 << 30;

/// A `nativeSitesRate` value: a size from [`MIN_NATIVE_SAMPLE_BYTES`] to [`MAX_NATIVE_SAMPLE_BYTES`].
pub fn parse_native_sites_rate(text: &str) -> Result<u64> {
    let n = parse_bytes(text)?;
    if !(MIN_NATIVE_SAMPLE_BYTES..=MAX_NATIVE_SAMPLE_BYTES).contains(&n) {
        return Err(Error::invalid(format!("{:?} is not a sampling rate from 4k to 1g", text.trim())));
    }
    Ok(n)
}

/// A `reportMaxSize` value: a size of at least [`MIN_REPORT_FILE_BYTES`].
pub fn parse_report_max_size(text: &str) -> Result<u64> {
    let n = parse_bytes(text)?;
    if n < MIN_REPORT_FILE_BYTES {
        return Err(Error::invalid(format!("{:?} is below the smallest report file, 16k", text.trim())));
    }
    Ok(n)
}

/// A `reportFiles` value: a whole number from 1 to [`MAX_REPORT_FILES`].
pub fn parse_report_files(text: &str) -> Result<usize> {
    let t = text.trim();
    match digits_value(t) {
        Some(n) if (1..=MAX_REPORT_FILES as u64).contains(&n) => Ok(n as usize),
        _ => Err(Error::invalid(format!("{t:?} is not a whole number from 1 to {MAX_REPORT_FILES}"))),
    }
}

/// A run of ASCII digits (no sign, no spaces, at most 18 of them) as a number.
fn digits_value(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `123`, `64k`, `64m`, `2g`, `1t` (case-insensitive, an optional trailing `b`) into bytes, at
/// most [`MAX_SIZE_BYTES`].
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match body.char_indices().last() {
        Some((i, 'k')) => (&body[..i], 10),
        Some((i, 'm')) => (&body[..i], 20),
        Some((i, 'g')) => (&body[..i], 30),
        Some((i, 't')) => (&body[..i], 40),
        _ => (body, 0),
    };
    let n = digits_value(digits)
        .ok_or_else(|| Error::invalid(format!("{t:?} is not a size (like 65536, 512k, 64m, 2g)")))?;
    if n > MAX_SIZE_BYTES >> shift {
        return Err(Error::invalid(format!("{t:?} is above the largest size, 1024t")));
    }
    Ok(n << shift)
}

/// `500ms`, `30s`, `5m` or `5min`, `1h` into milliseconds, at most [`MAX_DURATION_MS`]. A bare
/// number is refused: `trim=60000` could mean milliseconds (as `-XX:TrimNativeHeapInterval`) or
/// seconds, and a guess would be wrong half the time.
pub fn parse_duration_ms(text: &str) -> Result<u64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "" if !digits.is_empty() => {
            return Err(Error::invalid(format!(
                "{t:?} needs a unit: ms, s, m or h (like 500ms, 30s, 5m)"
            )))
        }
        _ => return Err(Error::invalid(format!("{t:?} is not a duration (like 500ms, 30s, 5m)"))),
    };
    let n = digits_value(digits)
        .ok_or_else(|| Error::invalid(format!("{t:?} is not a duration (like 500ms, 30s, 5m)")))?;
    if n > MAX_DURATION_MS / scale {
        return Err(Error::invalid(format!("{t:?} is above the longest duration, 8760h")));
    }
    Ok(n * scale)
}

/// `10%`, `10` or `2.5%` (up to three digits and six decimals) into a fraction in (0, 1].
pub fn parse_percent(text: &str) -> Result<f64> {
    let t = text.trim();
    let body = t.strip_suffix('%').unwrap_or(t).trim();
    let (whole, fraction) = body.split_once('.').unwrap_or((body, "0"));
    let well_formed = (1..=3).contains(&whole.len())
        && (1..=6).contains(&fraction.len())
        && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit());
    let n: f64 = if well_formed { body.parse().ok() } else { None }
        .ok_or_else(|| Error::invalid(format!("{t:?} is not a percentage (like 10%)")))?;
    if !(n > 0.0 && n <= 100.0) {
        return Err(Error::invalid(format!("{t:?} must be above 0% and at most 100%")));
    }
    Ok(n / 100.0)
}

/// `1048576` as `1.0 MiB`, for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("65536").ok(), Some(65536));
        assert_eq!(parse_bytes("64k").ok(), Some(64 << 10));
        assert_eq!(parse_bytes("64M").ok(), Some(64 << 20));
        assert_eq!(parse_bytes(" 2g ").ok(), Some(2 << 30));
        assert_eq!(parse_bytes("1tb").ok(), Some(1 << 40));
        assert_eq!(parse_bytes("16MB").ok(), Some(16 << 20));
        for bad in ["", "m", "-1", "+1", "1.5m", "12x", "99999999999999999999t", "１２"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_stop_at_one_pebibyte() {
        assert_eq!(parse_bytes("1024t").ok(), Some(MAX_SIZE_BYTES));
        assert_eq!(parse_bytes("1125899906842624").ok(), Some(MAX_SIZE_BYTES));
        for over in ["1025t", "1125899906842625", "1048577g", "999999999999999t"] {
            let err = parse_bytes(over).expect_err(over);
            assert!(err.to_string().contains("largest size"), "{over}: {err}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_ms("500ms").ok(), Some(500));
        assert_eq!(parse_duration_ms("30s").ok(), Some(30_000));
        assert_eq!(parse_duration_ms("5m").ok(), Some(300_000));
        assert_eq!(parse_duration_ms("5min").ok(), Some(300_000));
        assert_eq!(parse_duration_ms("1H").ok(), Some(3_600_000));
        let err = parse_duration_ms("60000").expect_err("bare number");
        assert!(err.to_string().contains("needs a unit"), "{err}");
        for bad in ["", "s", "10x", "1.5s", "-3s", "+3s", "5mins", "5 m"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_stop_at_a_year() {
        assert_eq!(parse_duration_ms("8760h").ok(), Some(MAX_DURATION_MS));
        assert_eq!(parse_duration_ms("525600min").ok(), Some(MAX_DURATION_MS));
        for over in ["8761h", "31536000001ms", "99999999999999h"] {
            let err = parse_duration_ms(over).expect_err(over);
            assert!(err.to_string().contains("longest duration"), "{over}: {err}");
        }
    }

    #[test]
    fn percentages_are_fractions() {
        assert_eq!(parse_percent("10%").ok(), Some(0.1));
        assert_eq!(parse_percent("25").ok(), Some(0.25));
        assert_eq!(parse_percent("2.5%").ok(), Some(0.025));
        for bad in ["0", "0%", "101%", "x", "-5%", "1e1%", "inf", "NaN", "1000%", ".5%", "5.%", "1.1234567%"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    /// The table `tests/test_options_bounds.py` runs through the Java side too.
    #[test]
    fn the_shared_table_of_option_values() {
        let table = include_str!("../tests/fixtures/units/option_values.tsv");
        let mut rows = 0;
        for line in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            let [kind, text, expected] = cols[..] else { panic!("bad row {line:?}") };
            let got: Option<f64> = match kind {
                "size" => parse_bytes(text).ok().map(|v| v as f64),
                "duration" => parse_duration_ms(text).ok().map(|v| v as f64),
                "percent" => parse_percent(text).ok(),
                "reportMaxSize" => parse_report_max_size(text).ok().map(|v| v as f64),
                "reportFiles" => parse_report_files(text).ok().map(|v| v as f64),
                "nativeSitesRate" => parse_native_sites_rate(text).ok().map(|v| v as f64),
                other => panic!("unknown kind {other}"),
            };
            match expected {
                "error" => assert!(got.is_none(), "{kind} {text:?} should be refused, got {got:?}"),
                n => {
                    let want: f64 = n.parse().expect("expected number");
                    let v = got.unwrap_or_else(|| panic!("{kind} {text:?} refused, want {n}"));
                    assert!((v - want).abs() <= want.abs() * 1e-12, "{kind} {text:?}: {v} != {want}");
                }
            }
            rows += 1;
        }
        assert!(rows > 40, "{rows}");
    }
}
