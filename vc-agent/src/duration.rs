//! Durations for people: `1d2h`, `5m6s ago`, `in 3m4s`. Shared by every room's status text.
use std::time::{Duration, SystemTime};

/// `1d2h`, `3h4m`, `5m6s`, `7s`.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{mins}m")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Seconds as [`format_duration`] writes them, or `-` when unknown.
#[must_use]
pub fn secs(s: Option<u64>) -> String {
    s.map_or_else(|| "-".into(), |s| format_duration(Duration::from_secs(s)))
}

/// `5m6s ago`, or `?`.
#[must_use]
pub fn ago(secs: Option<u64>) -> String {
    secs.map_or_else(
        || "?".into(),
        |s| format!("{} ago", format_duration(Duration::from_secs(s))),
    )
}

/// `in 5m6s`, or `?`.
#[must_use]
pub fn within(secs: Option<u64>) -> String {
    secs.map_or_else(
        || "?".into(),
        |s| format!("in {}", format_duration(Duration::from_secs(s))),
    )
}

/// Whole seconds from `t` to `now` (`None`: unknown, or `t` in the future).
#[must_use]
pub fn since(now: SystemTime, t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs())
}

/// Whole seconds from `now` to `t` (`None`: unknown, or `t` past).
#[must_use]
pub fn until(now: SystemTime, t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(now).ok())
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ago, format_duration, secs, within};

    #[test]
    fn durations_read_as_the_two_largest_units() {
        assert_eq!(format_duration(Duration::from_secs(7)), "7s");
        assert_eq!(format_duration(Duration::from_secs(306)), "5m6s");
        assert_eq!(format_duration(Duration::from_mins(184)), "3h4m");
        assert_eq!(format_duration(Duration::from_hours(26)), "1d2h");
        assert_eq!(ago(Some(306)), "5m6s ago");
        assert_eq!(within(None), "?");
        assert_eq!(secs(None), "-");
    }
}
