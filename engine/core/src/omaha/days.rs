//! Day counting for client-regulated user counting.
//!
//! Servers send `daystart.elapsed_days`, the number of whole days since
//! 2007-01-01. Clients store it and send it back: as `ping.rd` / `ping.ad`
//! (the day of the previous roll call / active report), as the number of
//! days since then (`ping.r` / `ping.a`, 3.x), and as `installdate`.

use serde::{Deserialize, Serialize};

use super::Ping;

/// `installdate` / ping date meaning "unknown".
pub const DATE_UNKNOWN: i64 = -2;
/// `installdate` / ping date meaning "first time" (the install request).
pub const DATE_FIRST: i64 = -1;

/// The install date to store from the response to the install request:
/// the server's day, fuzzed down to a multiple of seven for privacy.
pub fn fuzz_install_date(elapsed_days: i64) -> i64 {
    if elapsed_days < 0 {
        return elapsed_days;
    }
    elapsed_days - elapsed_days % 7
}

/// The calendar date (`YYYY-MM-DD`) of an `elapsed_days` value.
pub fn date_of_elapsed_days(elapsed_days: i64) -> String {
    // Days from 1970-01-01 to 2007-01-01.
    let z = elapsed_days + 13_514 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What a client remembers of one app's counting days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityDays {
    /// The server day of the last roll call (any update check).
    pub last_roll_call: Option<i64>,
    /// The server day of the last active report.
    pub last_active: Option<i64>,
    /// Whether the app was used since the last active report.
    pub active_since: bool,
    /// The stored install date (`None`: the next request is the install).
    pub install_date: Option<i64>,
}

impl ActivityDays {
    /// The ping to send. `today` is the client's estimate of the current
    /// server day (the last `elapsed_days` plus local days since), when known;
    /// without it the day differences `r` / `a` are not sent.
    pub fn ping(&self, today: Option<i64>) -> Ping {
        let since = |day: Option<i64>| match (day, today) {
            (None, _) => Some(DATE_FIRST),
            (Some(d), Some(t)) if t >= d => Some(t - d),
            _ => None,
        };
        let mut ping = Ping {
            rd: Some(self.last_roll_call.unwrap_or(DATE_FIRST)),
            r: since(self.last_roll_call),
            ..Ping::default()
        };
        if self.active_since {
            ping.active = Some(true);
            ping.ad = Some(self.last_active.unwrap_or(DATE_FIRST));
            ping.a = since(self.last_active);
        }
        ping
    }

    /// The `installdate` to send: the stored date, or "first" for the
    /// install request itself.
    pub fn install_date_to_send(&self) -> i64 {
        self.install_date.unwrap_or(DATE_FIRST)
    }

    /// Records a response's `daystart.elapsed_days` after a request that
    /// carried this app's ping.
    pub fn record_response(&mut self, elapsed_days: i64) {
        if elapsed_days < 0 {
            return;
        }
        self.last_roll_call = Some(elapsed_days);
        if self.active_since {
            self.last_active = Some(elapsed_days);
            self.active_since = false;
        }
        if self.install_date.is_none() {
            self.install_date = Some(fuzz_install_date(elapsed_days));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_2007() {
        assert_eq!(date_of_elapsed_days(0), "2007-01-01");
        assert_eq!(date_of_elapsed_days(365), "2008-01-01");
        assert_eq!(date_of_elapsed_days(424), "2008-02-29");
        assert_eq!(date_of_elapsed_days(3383), "2016-04-06");
    }

    #[test]
    fn install_dates_are_fuzzed_to_weeks() {
        assert_eq!(fuzz_install_date(3383), 3381);
        assert_eq!(fuzz_install_date(3381), 3381);
        assert_eq!(fuzz_install_date(DATE_UNKNOWN), DATE_UNKNOWN);
    }

    #[test]
    fn daystart_feeds_the_next_ping() {
        let mut days = ActivityDays::default();
        let first = days.ping(None);
        assert_eq!(
            (first.rd, first.r, first.a, first.ad),
            (Some(-1), Some(-1), None, None)
        );
        assert_eq!(days.install_date_to_send(), DATE_FIRST);

        days.active_since = true;
        days.record_response(456);
        assert_eq!(days.last_roll_call, Some(456));
        assert_eq!(days.last_active, Some(456));
        assert_eq!(days.install_date, Some(455));
        assert!(!days.active_since);

        let next = days.ping(Some(460));
        assert_eq!((next.rd, next.r), (Some(456), Some(4)));
        assert_eq!((next.ad, next.a, next.active), (None, None, None));

        days.active_since = true;
        let active = days.ping(Some(460));
        assert_eq!(
            (active.ad, active.a, active.active),
            (Some(456), Some(4), Some(true))
        );
        assert_eq!(days.install_date_to_send(), 455);
    }
}
