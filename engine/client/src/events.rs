//! The events of an operation as it records them, and their two forms on
//! the way out: the Omaha event (download statistics as attributes) and
//! the telemetry sinks' `update-event`. They wait in the outbox
//! ([`crate::outbox`]) until delivered.

use upkeep_core::download::DownloadReport;
use upkeep_core::omaha::{ErrorCategory, Event, EventResult, EventType};
use upkeep_core::outbox::{DownloadStats, OutboxEntry};
use upkeep_core::state::AppRecord;
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::types;

use crate::error::UpdateError;
use crate::files::duration_ms;

/// The downloader's name in download events.
pub(crate) const DOWNLOADER: &str = "upkeep-http";

/// An event to report, in both the Omaha and the plugin form.
pub(crate) struct Recorded {
    pub(crate) app_id: String,
    pub(crate) event: Event,
    pub(crate) download: Option<DownloadReport>,
    pub(crate) timestamp_ms: u64,
    pub(crate) duration_ms: Option<u64>,
}

impl Recorded {
    pub(crate) fn new(app_id: &str, event: Event) -> Self {
        Self {
            app_id: app_id.to_owned(),
            event,
            download: None,
            timestamp_ms: crate::files::now_ms(),
            duration_ms: None,
        }
    }

    /// The outbox entry of this event, for the app at `version` once it
    /// happened, recorded in `session` (numbered when pushed).
    pub(crate) fn into_entry(self, version: Version, session: &str) -> OutboxEntry {
        let event = omaha_event(&self);
        let mut entry = OutboxEntry::new(&self.app_id, version, event, session, self.timestamp_ms);
        entry.duration_ms = self.duration_ms;
        entry.download = self.download.map(|d| DownloadStats {
            url: d.url,
            downloaded_bytes: d.downloaded_bytes,
            total_bytes: d.total_bytes,
            download_time_ms: duration_ms(d.duration),
        });
        entry
    }
}

/// An event of `kind`, successful or reporting `failure`.
pub(crate) fn event(
    kind: EventType,
    failure: Option<&UpdateError>,
    previous: &Version,
    next: Option<&Version>,
) -> Event {
    let mut e = Event::new(
        kind,
        match failure {
            None => EventResult::Success,
            Some(UpdateError::Cancelled) => EventResult::Cancelled,
            Some(_) => EventResult::Error,
        },
    );
    let (category, code, extra) = failure.map_or((ErrorCategory::None, 0, 0), UpdateError::omaha);
    e.errorcat = Some(category);
    e.errorcode = Some(code);
    e.extracode1 = Some(extra);
    e.previousversion = Some(previous.to_string());
    e.nextversion = next.map(ToString::to_string);
    e
}

/// Install for an app not installed yet, update otherwise.
pub(crate) fn kind_for(record: &AppRecord) -> EventType {
    if record.version == Version::default() {
        EventType::Install
    } else {
        EventType::Update
    }
}

/// The Omaha form of a recorded event, download statistics included.
fn omaha_event(r: &Recorded) -> Event {
    let mut e = r.event.clone();
    if let Some(d) = &r.download {
        e.extra.insert("url".into(), d.url.clone());
        e.extra.insert("downloader".into(), DOWNLOADER.into());
        e.extra
            .insert("downloaded".into(), d.downloaded_bytes.to_string());
        e.extra.insert("total".into(), d.total_bytes.to_string());
        e.extra.insert(
            "download_time_ms".into(),
            duration_ms(d.duration).to_string(),
        );
    }
    e
}

/// The telemetry sinks' form of an outbox entry.
pub(crate) fn wit_event(r: &OutboxEntry) -> types::UpdateEvent {
    let e = &r.event;
    let event_type = match e.eventtype {
        EventType::Install => types::EventType::Install,
        EventType::Update => types::EventType::Update,
        EventType::Uninstall => types::EventType::Uninstall,
        EventType::Download => types::EventType::Download,
        EventType::AppCommand => types::EventType::AppCommand,
        EventType::Action => types::EventType::Action,
        other => types::EventType::Other(u16::try_from(other.code()).unwrap_or(u16::MAX)),
    };
    let outcome = match e.eventresult {
        EventResult::Error => types::EventResult::Error,
        EventResult::Success => types::EventResult::Success,
        EventResult::SuccessReboot => types::EventResult::SuccessReboot,
        EventResult::Cancelled => types::EventResult::Cancelled,
        EventResult::NoUpdate => types::EventResult::NoUpdate,
        EventResult::UpdateDeferred => types::EventResult::UpdateDeferred,
        other => types::EventResult::Other(u16::try_from(other.code()).unwrap_or(u16::MAX)),
    };
    let error_category = match e.errorcat {
        None | Some(ErrorCategory::None) => types::ErrorCategory::None,
        Some(ErrorCategory::Download) => types::ErrorCategory::Download,
        Some(ErrorCategory::Unpack) => types::ErrorCategory::Unpack,
        Some(ErrorCategory::UpdateCheck) => types::ErrorCategory::UpdateCheck,
        Some(ErrorCategory::Service) => types::ErrorCategory::Service,
        Some(_) => types::ErrorCategory::Install,
    };
    let clamp = |v: Option<i64>| {
        let v = v.unwrap_or(0);
        i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
    };
    types::UpdateEvent {
        app_id: r.app.clone(),
        event_type,
        outcome,
        error_category,
        error_code: clamp(e.errorcode),
        extra_code: clamp(e.extracode1),
        previous_version: e.previousversion.clone(),
        next_version: e.nextversion.clone(),
        download: r.download.as_ref().map(|d| types::DownloadStats {
            url: d.url.clone(),
            downloader: DOWNLOADER.into(),
            downloaded_bytes: d.downloaded_bytes,
            total_bytes: d.total_bytes,
            download_time_ms: d.download_time_ms,
        }),
        timestamp_ms: r.timestamp_ms,
        duration_ms: r.duration_ms,
        session_id: r.session.clone(),
    }
}
