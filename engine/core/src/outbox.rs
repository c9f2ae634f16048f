//! The event outbox, kept in the prefs: every event an operation reports
//! (install, update, rollback, uninstall, their failures, downloads) waits
//! here until the update server acknowledged it in a CUP-verified answer
//! and every configured telemetry sink has taken it.
//!
//! - An entry has a sequence number, higher than that of every entry and
//!   every sink mark before it ([`Outbox::push`]).
//! - An event that reports a change of the prefs is pushed into the same
//!   [`crate::state::Prefs`] value that records the change, so both reach
//!   the disk in one atomic write; the events of a journalled switch ride
//!   in the journal ([`crate::state::PendingSwitch::events`]) and enter the
//!   outbox in the write that completes the switch, or are dropped with it.
//! - [`Outbox::acknowledge`] marks entries the server has; each sink keeps
//!   the highest sequence number it took ([`Outbox::sink_passed`]);
//!   [`Outbox::settle`] removes what the server and every sink have.
//! - [`Outbox::enforce_cap`] drops the oldest entries beyond a cap and
//!   counts them in [`Outbox::dropped`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::omaha::Event;
use crate::version::Version;

/// The number of entries an outbox holds unless configured otherwise.
pub const DEFAULT_CAP: usize = 1000;

/// Download statistics of a download event (type 14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStats {
    /// The URL the last bytes came from.
    pub url: String,
    /// Bytes transferred.
    pub downloaded_bytes: u64,
    /// The file's length.
    pub total_bytes: u64,
    /// Wall time of the download in milliseconds.
    pub download_time_ms: u64,
}

/// One event waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Its sequence number (0 until pushed).
    pub seq: u64,
    /// The app (lower case).
    pub app: String,
    /// The app's version once the event happened (sent with the event when
    /// the app is no longer registered).
    pub version: Version,
    /// The event in its Omaha form.
    pub event: Event,
    /// When it happened (Unix milliseconds).
    pub timestamp_ms: u64,
    /// How long the operation took, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// For a download event, its statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadStats>,
    /// The session id of the operation that recorded it.
    pub session: String,
    /// The server acknowledged it, or it is not for the server (a failure
    /// to reach the server at all is reported to the sinks only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acked: bool,
}

impl OutboxEntry {
    /// An entry for `app` at `version`, not numbered yet.
    pub fn new(
        app: &str,
        version: Version,
        event: Event,
        session: &str,
        timestamp_ms: u64,
    ) -> Self {
        Self {
            seq: 0,
            app: app.to_owned(),
            version,
            event,
            timestamp_ms,
            duration_ms: None,
            download: None,
            session: session.to_owned(),
            acked: false,
        }
    }
}

/// The outbox (the `outbox` member of `prefs.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// The entries, in sequence order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<OutboxEntry>,
    /// Per telemetry sink (its configured path), the highest sequence
    /// number it has taken.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sinks: BTreeMap<String, u64>,
    /// How many entries the cap dropped, ever.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Outbox {
    /// Nothing waits, no sink mark, nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.sinks.is_empty() && self.dropped == 0
    }

    /// The sequence number the next entry gets: above every entry's and
    /// every sink's mark, so a sink never mistakes a new entry for one it
    /// has taken.
    pub fn next_seq(&self) -> u64 {
        let entries = self.entries.iter().map(|e| e.seq).max().unwrap_or(0);
        let marks = self.sinks.values().copied().max().unwrap_or(0);
        entries.max(marks) + 1
    }

    /// Numbers `entry` and appends it; returns its sequence number.
    pub fn push(&mut self, mut entry: OutboxEntry) -> u64 {
        entry.seq = self.next_seq();
        let seq = entry.seq;
        self.entries.push(entry);
        seq
    }

    /// Numbers `entries` as [`Outbox::push`] would, without appending them
    /// (the events of a journalled switch, appended once it completes).
    pub fn number(&self, entries: Vec<OutboxEntry>) -> Vec<OutboxEntry> {
        let first = self.next_seq();
        entries
            .into_iter()
            .zip(first..)
            .map(|(mut e, seq)| {
                e.seq = seq;
                e
            })
            .collect()
    }

    /// Appends entries numbered by [`Outbox::number`], keeping the order.
    pub fn extend(&mut self, entries: Vec<OutboxEntry>) {
        self.entries.extend(entries);
        self.entries.sort_by_key(|e| e.seq);
    }

    /// The entries the server has not acknowledged.
    pub fn unacked(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter().filter(|e| !e.acked)
    }

    /// Marks the entries with these sequence numbers acknowledged.
    pub fn acknowledge(&mut self, seqs: &[u64]) {
        for e in &mut self.entries {
            if seqs.contains(&e.seq) {
                e.acked = true;
            }
        }
    }

    /// The entries `sink` has not taken yet.
    pub fn for_sink<'a>(&'a self, sink: &str) -> impl Iterator<Item = &'a OutboxEntry> + 'a {
        let mark = self.sinks.get(sink).copied().unwrap_or(0);
        self.entries.iter().filter(move |e| e.seq > mark)
    }

    /// Records that `sink` has taken every entry up to `seq`.
    pub fn sink_passed(&mut self, sink: &str, seq: u64) {
        let mark = self.sinks.entry(sink.to_owned()).or_insert(0);
        *mark = (*mark).max(seq);
    }

    /// Removes the entries the server acknowledged and every sink of
    /// `sinks` (the configured ones) has taken; forgets the marks of sinks
    /// no longer configured. Returns how many entries left.
    pub fn settle(&mut self, sinks: &[String]) -> usize {
        self.sinks.retain(|name, _| sinks.contains(name));
        let lowest_mark = sinks
            .iter()
            .map(|s| self.sinks.get(s).copied().unwrap_or(0))
            .min()
            .unwrap_or(u64::MAX);
        let before = self.entries.len();
        self.entries.retain(|e| !(e.acked && e.seq <= lowest_mark));
        before - self.entries.len()
    }

    /// Drops the oldest entries beyond `cap` and counts them; returns how
    /// many were dropped.
    pub fn enforce_cap(&mut self, cap: usize) -> usize {
        let excess = self.entries.len().saturating_sub(cap);
        if excess > 0 {
            self.entries.drain(..excess);
            self.dropped = self.dropped.saturating_add(excess as u64);
        }
        excess
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omaha::{EventResult, EventType};

    fn entry(app: &str) -> OutboxEntry {
        OutboxEntry::new(
            app,
            "1.0".parse().unwrap(),
            Event::new(EventType::Update, EventResult::Success),
            "{s}",
            7,
        )
    }

    #[test]
    fn sequence_numbers_rise_past_entries_and_sink_marks() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.push(entry("a")), 1);
        assert_eq!(outbox.push(entry("a")), 2);
        outbox.sink_passed("sink", 2);
        outbox.acknowledge(&[1, 2]);
        assert_eq!(outbox.settle(&["sink".to_owned()]), 2);
        assert!(outbox.entries.is_empty());
        // The sink has taken 2: the next entry must not look taken.
        assert_eq!(outbox.push(entry("a")), 3);
        assert_eq!(outbox.for_sink("sink").count(), 1);
    }

    #[test]
    fn an_entry_stays_until_the_server_and_every_sink_have_it() {
        let mut outbox = Outbox::default();
        for _ in 0..3 {
            outbox.push(entry("a"));
        }
        let sinks = ["one".to_owned(), "two".to_owned()];
        outbox.acknowledge(&[1, 2, 3]);
        outbox.sink_passed("one", 3);
        outbox.sink_passed("two", 1);
        assert_eq!(outbox.settle(&sinks), 1);
        assert_eq!(
            outbox.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(outbox.for_sink("one").count(), 0);
        assert_eq!(outbox.for_sink("two").count(), 2);
        // Unacknowledged entries stay whatever the sinks took.
        outbox.push(entry("b"));
        outbox.sink_passed("two", 4);
        outbox.sink_passed("one", 4);
        assert_eq!(outbox.settle(&sinks), 2);
        assert_eq!(outbox.unacked().map(|e| e.seq).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn the_marks_of_sinks_no_longer_configured_are_forgotten() {
        let mut outbox = Outbox::default();
        outbox.push(entry("a"));
        outbox.sink_passed("gone", 1);
        outbox.acknowledge(&[1]);
        assert_eq!(outbox.settle(&[]), 1);
        assert!(outbox.is_empty());
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts_them() {
        let mut outbox = Outbox::default();
        for _ in 0..5 {
            outbox.push(entry("a"));
        }
        assert_eq!(outbox.enforce_cap(3), 2);
        assert_eq!(outbox.enforce_cap(3), 0);
        assert_eq!(
            outbox.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(outbox.dropped, 2);
    }

    #[test]
    fn journalled_entries_are_numbered_then_appended_in_order() {
        let mut outbox = Outbox::default();
        outbox.push(entry("a"));
        let staged = outbox.number(vec![entry("b"), entry("b")]);
        assert_eq!(staged.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        outbox.extend(staged);
        assert_eq!(outbox.push(entry("c")), 4);
    }

    #[test]
    fn an_entry_survives_a_round_trip_through_json() {
        let mut e = entry("a");
        e.download = Some(DownloadStats {
            url: "http://x/p".into(),
            downloaded_bytes: 3,
            total_bytes: 3,
            download_time_ms: 9,
        });
        e.event.errorcat = Some(crate::omaha::ErrorCategory::Download);
        e.event.errorcode = Some(6);
        let mut outbox = Outbox::default();
        outbox.push(e);
        let text = serde_json::to_string(&outbox).unwrap();
        let back: Outbox = serde_json::from_str(&text).unwrap();
        assert_eq!(back, outbox);
    }
}
