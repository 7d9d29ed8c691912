//! Event log: one line per event on stderr, prefixed with a UTC timestamp.
//!
//! Callers format user-controlled strings with `{:?}` so that a hostile app or user ID cannot
//! forge log lines; secrets and tokens are never passed here.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes one event line to stderr: `2025-01-31T12:00:00.123Z crvm-server: <event>`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}

/// What [`log!`] expands to.
pub fn line(args: fmt::Arguments<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = utc(now.as_secs() as i64, now.subsec_millis());
    // One locked write per line keeps lines from different threads whole.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{stamp} crvm-server: {args}");
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (era-based arithmetic: 400-year
/// eras of 146 097 days, years starting in March so the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(utc(1_764_000_000, 999), "2025-11-24T16:00:00.999Z");
    }
}
