//! When the next scheduled update check is due.
//!
//! The configured interval (or, later, a policy's) is spread per machine
//! and per check, as Chromium's updater does, so that a fleet that checked
//! at the same moment (after an outage, a release, a mass install) does not
//! stay in step: after each completed check a spread is drawn uniformly
//! between −10 % and +20 % of the interval (in thousandths) and kept in the
//! prefs beside `last_check`, and the next scheduled check is due once
//! `interval × (1 + spread)` has passed. Checks someone asks for
//! (`update`, `wake --now`) are never delayed by it.

/// The smallest spread, in thousandths of the interval (−10 %).
pub const SPREAD_MIN_PERMILLE: i16 = -100;
/// The largest spread, in thousandths of the interval (+20 %).
pub const SPREAD_MAX_PERMILLE: i16 = 200;

/// A spread drawn uniformly from `SPREAD_MIN_PERMILLE..=SPREAD_MAX_PERMILLE`;
/// without randomness from the system, none (0).
pub fn draw_spread() -> i16 {
    let span = u16::try_from(SPREAD_MAX_PERMILLE - SPREAD_MIN_PERMILLE + 1).unwrap_or(1);
    // Rejection sampling keeps the draw uniform.
    let limit = u16::MAX - u16::MAX % span;
    for _ in 0..64 {
        let mut b = [0u8; 2];
        if getrandom::fill(&mut b).is_err() {
            return 0;
        }
        let n = u16::from_le_bytes(b);
        if n < limit {
            return SPREAD_MIN_PERMILLE + i16::try_from(n % span).unwrap_or(0);
        }
    }
    0
}

/// The interval with `spread` (thousandths; clamped to the allowed range)
/// applied, in seconds.
pub fn spread_interval(interval: i64, spread: Option<i16>) -> i64 {
    let spread = spread
        .unwrap_or(0)
        .clamp(SPREAD_MIN_PERMILLE, SPREAD_MAX_PERMILLE);
    let secs = i128::from(interval) * (1000 + i128::from(spread)) / 1000;
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Seconds until the next scheduled check is due (0 or less: due now).
/// Never checked, or a last check in the future (the clock went back): due.
pub fn seconds_until_due(last: Option<i64>, now: i64, interval: i64, spread: Option<i16>) -> i64 {
    match last {
        Some(last) if last <= now => last
            .saturating_add(spread_interval(interval, spread))
            .saturating_sub(now),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_stretches_or_shortens_the_interval() {
        assert_eq!(spread_interval(18_000, None), 18_000);
        assert_eq!(spread_interval(18_000, Some(-100)), 16_200);
        assert_eq!(spread_interval(18_000, Some(200)), 21_600);
        // Out of range (a hand-edited prefs file): clamped.
        assert_eq!(spread_interval(18_000, Some(900)), 21_600);
        assert_eq!(spread_interval(18_000, Some(-900)), 16_200);
        assert_eq!(spread_interval(i64::MAX, Some(200)), i64::MAX);
    }

    #[test]
    fn due_after_the_spread_interval_and_at_once_when_the_clock_went_back() {
        assert_eq!(seconds_until_due(None, 100, 1_000, None), 0);
        assert_eq!(seconds_until_due(Some(0), 100, 1_000, Some(200)), 1_100);
        assert_eq!(seconds_until_due(Some(0), 900, 1_000, Some(-100)), 0);
        assert!(seconds_until_due(Some(0), 2_000, 1_000, Some(0)) < 0);
        assert_eq!(seconds_until_due(Some(5_000), 100, 1_000, None), 0);
    }

    #[test]
    fn spreads_cover_the_range_evenly() {
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            let s = draw_spread();
            assert!((SPREAD_MIN_PERMILLE..=SPREAD_MAX_PERMILLE).contains(&s));
            counts[usize::try_from(s - SPREAD_MIN_PERMILLE).unwrap() / 101] += 1;
        }
        // About 10,000 each; 5 standard deviations is about 410.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }
}
