//! The freshness window: an event whose own time is older than its endpoint's `max_event_age`, or
//! too far ahead of this clock, is refused before anything is published.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How far ahead of this server's clock an event may be dated: a sender's clock drifts a little.
/// Never more than the window itself.
pub const MAX_AHEAD: Duration = Duration::from_secs(300);

/// An event outside the window.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("an event dated {time} is {age} s old; this endpoint takes events at most {max} s old (max_event_age)")]
    Old { time: String, age: u64, max: u64 },
    #[error("an event dated {time} is {ahead} s ahead of this server's clock (at most {max} s allowed)")]
    Ahead { time: String, ahead: u64, max: u64 },
}

/// Every event time against the window `max_age` at `now` (Unix seconds); events without a time
/// pass. The first one outside it is the error.
pub fn check(
    times: impl IntoIterator<Item = Option<DateTime<Utc>>>,
    max_age: Duration,
    now: i64,
) -> Result<(), Stale> {
    let max = max_age.as_secs();
    let max_ahead = max_age.min(MAX_AHEAD).as_secs();
    for time in times.into_iter().flatten() {
        let age = now.saturating_sub(time.timestamp());
        let shown = || time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        if age > 0 && age.unsigned_abs() > max {
            return Err(Stale::Old { time: shown(), age: age.unsigned_abs(), max });
        }
        if age < 0 && age.unsigned_abs() > max_ahead {
            return Err(Stale::Ahead { time: shown(), ahead: age.unsigned_abs(), max: max_ahead });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(secs, 0)
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn events_within_the_window_or_without_a_time_pass() {
        assert_eq!(check([at(NOW), at(NOW - 3600), None, at(NOW + 300)], HOUR, NOW), Ok(()));
        assert_eq!(check([], HOUR, NOW), Ok(()));
    }

    #[test]
    fn an_old_event_is_refused() {
        let err = check([at(NOW), at(NOW - 3601)], HOUR, NOW).unwrap_err();
        assert_eq!(err, Stale::Old { time: "2023-11-14T21:13:19Z".into(), age: 3601, max: 3600 });
        assert!(err.to_string().contains("3601 s old"), "{err}");
    }

    #[test]
    fn an_event_from_the_future_is_refused_beyond_the_skew_allowed() {
        let err = check([at(NOW + 301)], HOUR, NOW).unwrap_err();
        assert!(matches!(err, Stale::Ahead { ahead: 301, max: 300, .. }), "{err:?}");
        // A window shorter than the skew allowance bounds it too.
        let minute = Duration::from_secs(60);
        assert!(check([at(NOW + 60)], minute, NOW).is_ok());
        assert!(matches!(check([at(NOW + 61)], minute, NOW), Err(Stale::Ahead { max: 60, .. })));
    }
}
