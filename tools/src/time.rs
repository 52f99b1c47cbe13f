//! A "current time" tool, and the calendar arithmetic behind it.
//!
//! Models do not know what time it is. [`CurrentTime`] (name `current_time`) reads
//! [`std::time::SystemTime`] and returns the time as RFC 3339 text, unix seconds and the
//! weekday, in UTC or at an optional fixed `offset_minutes` from UTC. The date is computed
//! by hand with Howard Hinnant's civil-from-days algorithm ([`civil_from_days`]), so the
//! crate needs no date library; it has second precision and knows nothing of time zones
//! or daylight saving, only fixed offsets.
//!
//! ```
//! use catena_tools::{civil_from_days, format_rfc3339};
//!
//! assert_eq!(civil_from_days(0), (1970, 1, 1));
//! assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
//! assert_eq!(format_rfc3339(951_782_400, 90), "2000-02-29T01:30:00+01:30");
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use catena_core::{ToolError, TypedTool};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest offset from UTC [`CurrentTime`] accepts, in minutes (23:59).
pub(crate) const MAX_OFFSET_MINUTES: i32 = 24 * 60 - 1;

const SECONDS_PER_DAY: i64 = 86_400;

/// The proleptic Gregorian date `(year, month 1–12, day 1–31)` of the day `days` after
/// 1970-01-01 (negative before it).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`.
    // Saturate so that absurd inputs give an absurd date rather than an overflow.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(month <= 2));
    // Both are in small ranges, so the conversions cannot fail.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// The weekday name of the day `days` after 1970-01-01 (a Thursday).
pub fn weekday_from_days(days: i64) -> &'static str {
    const NAMES: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let index = usize::try_from(days.rem_euclid(7)).unwrap_or(0);
    NAMES.get(index).copied().unwrap_or("Thursday")
}

/// Formats a unix time as RFC 3339 with second precision, at `offset_minutes` from UTC
/// (`Z` for 0, `±hh:mm` otherwise). Offsets are clamped to ±[`MAX_OFFSET_MINUTES`].
pub fn format_rfc3339(unix_seconds: i64, offset_minutes: i32) -> String {
    let offset = offset_minutes.clamp(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES);
    let local = unix_seconds.saturating_add(i64::from(offset) * 60);
    let days = local.div_euclid(SECONDS_PER_DAY);
    let secs = local.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{zone}")
}

/// Seconds since the unix epoch (negative before it, saturating far from it).
fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The arguments of [`CurrentTime`].
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct CurrentTimeArgs {
    /// Offset from UTC in minutes for the local time to report, e.g. 60 for UTC+01:00 or
    /// -300 for UTC-05:00. Omit for UTC.
    #[serde(default)]
    pub offset_minutes: Option<i32>,
}

/// What [`CurrentTime`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CurrentTimeOutput {
    /// The time as RFC 3339, e.g. `2024-05-17T14:03:09Z` or `2024-05-17T16:03:09+02:00`.
    pub rfc3339: String,
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
    /// The weekday at the requested offset, e.g. `Friday`.
    pub weekday: String,
    /// The offset used, in minutes from UTC.
    pub offset_minutes: i32,
}

/// The current time as a tool (name `current_time`).
///
/// ```
/// use catena_core::{Tool, TypedTool};
/// use catena_tools::CurrentTime;
///
/// # futures::executor::block_on(async {
/// let tool = CurrentTime::fixed(0).into_tool();
/// let out = tool.call(serde_json::json!({"offset_minutes": -300})).await.unwrap();
/// assert_eq!(out.content["rfc3339"], "1969-12-31T19:00:00-05:00");
/// assert_eq!(out.content["unix_seconds"], 0);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct CurrentTime {
    fixed: Option<i64>,
}

impl CurrentTime {
    /// Reads the system clock on every call.
    pub fn new() -> Self {
        CurrentTime::default()
    }

    /// Always reports this unix time (for tests and reproducible runs).
    pub fn fixed(unix_seconds: i64) -> Self {
        CurrentTime {
            fixed: Some(unix_seconds),
        }
    }

    /// The time at `offset_minutes` from UTC.
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] when the offset is beyond ±[`MAX_OFFSET_MINUTES`].
    pub fn now(&self, offset_minutes: i32) -> Result<CurrentTimeOutput, ToolError> {
        if offset_minutes.unsigned_abs() > MAX_OFFSET_MINUTES.unsigned_abs() {
            return Err(ToolError::invalid_arguments(format!(
                "offset_minutes must be between -{MAX_OFFSET_MINUTES} and {MAX_OFFSET_MINUTES}, \
                 got {offset_minutes}"
            )));
        }
        let unix = self
            .fixed
            .unwrap_or_else(|| unix_seconds(SystemTime::now()));
        let local_days = unix
            .saturating_add(i64::from(offset_minutes) * 60)
            .div_euclid(SECONDS_PER_DAY);
        Ok(CurrentTimeOutput {
            rfc3339: format_rfc3339(unix, offset_minutes),
            unix_seconds: unix,
            weekday: weekday_from_days(local_days).to_owned(),
            offset_minutes,
        })
    }
}

#[async_trait]
impl TypedTool for CurrentTime {
    type Args = CurrentTimeArgs;
    type Output = CurrentTimeOutput;

    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Returns the current date and time (RFC 3339, unix seconds and weekday), in UTC or \
         at a given offset from UTC in minutes."
    }

    async fn call(&self, args: CurrentTimeArgs) -> Result<CurrentTimeOutput, ToolError> {
        self.now(args.offset_minutes.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (68_169_600, "1972-02-29T00:00:00Z"),
            (946_684_799, "1999-12-31T23:59:59Z"),
            (946_684_800, "2000-01-01T00:00:00Z"),
            (951_868_800, "2000-03-01T00:00:00Z"),
            (1_234_567_890, "2009-02-13T23:31:30Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (2_147_483_647, "2038-01-19T03:14:07Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"),
            (-62_135_596_800, "0001-01-01T00:00:00Z"),
        ];
        for (unix, want) in cases {
            assert_eq!(format_rfc3339(*unix, 0), *want, "{unix}");
        }
    }

    #[test]
    fn days_round_trip_over_many_years() {
        // Consecutive days must advance the date by exactly one day.
        let mut prev = civil_from_days(-800_000);
        for d in -799_999..800_000 {
            let cur = civil_from_days(d);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{d}: {prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }

    #[test]
    fn offsets_and_weekdays() {
        assert_eq!(
            format_rfc3339(1_234_567_890, 330),
            "2009-02-14T05:01:30+05:30"
        );
        assert_eq!(
            format_rfc3339(1_234_567_890, -480),
            "2009-02-13T15:31:30-08:00"
        );
        assert_eq!(weekday_from_days(0), "Thursday");
        assert_eq!(weekday_from_days(-1), "Wednesday");
        // 2024-02-29 was a Thursday.
        assert_eq!(weekday_from_days(1_709_164_800 / 86_400), "Thursday");
        let out = CurrentTime::fixed(1_234_567_890).now(330).unwrap();
        assert_eq!(out.weekday, "Saturday");
        assert!(CurrentTime::fixed(0).now(1440).is_err());
        assert!(CurrentTime::fixed(0).now(i32::MIN).is_err());
    }

    #[test]
    fn extremes_do_not_panic() {
        for t in [i64::MIN, i64::MAX, i64::MIN / 2, i64::MAX / 2] {
            let _ = format_rfc3339(t, MAX_OFFSET_MINUTES);
            let _ = format_rfc3339(t, -MAX_OFFSET_MINUTES);
            let _ = weekday_from_days(t);
        }
    }

    #[test]
    fn system_clock_is_after_2020() {
        let out = CurrentTime::new().now(0).unwrap();
        assert!(out.unix_seconds > 1_577_836_800);
        assert!(out.rfc3339.ends_with('Z'));
    }
}
