//! The events of an operation: recorded as it goes, then reported to the
//! update server in one signed ping and handed to the telemetry sinks.

use std::collections::BTreeMap;
use std::path::Path;

use upkeep_core::crash;
use upkeep_core::download::DownloadReport;
use upkeep_core::http::HttpClient;
use upkeep_core::omaha::{
    ErrorCategory, Event, EventResult, EventType, RequestApp, RequestBuilder,
};
use upkeep_core::state::{AppRecord, Prefs};
use upkeep_core::update_check;
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::types;

use crate::config::Config;
use crate::error::UpdateError;
use crate::files::duration_ms;
use crate::observer::{Observer, Warning};
use crate::plugins::Plugins;

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

/// Where events go: the server's ping endpoint and the telemetry sinks.
pub(crate) struct Reporter<'a> {
    pub(crate) root: &'a Path,
    pub(crate) config: &'a Config,
    pub(crate) http: &'a dyn HttpClient,
    pub(crate) plugins: &'a dyn Plugins,
    pub(crate) session: &'a str,
}

impl Reporter<'_> {
    /// Sends `events` as one Omaha request (same session), signed like the
    /// update check. A failure is a warning: what they report is done.
    pub(crate) fn send_ping(
        &self,
        events: &[Recorded],
        prefs: &Prefs,
        ids: &[String],
        removed: &BTreeMap<String, Version>,
        observer: &mut dyn Observer,
    ) {
        let mut builder = RequestBuilder::new(self.config.protocol)
            .updater("upkeep", env!("CARGO_PKG_VERSION"))
            .sessionid(self.session);
        for id in ids {
            let app_events: Vec<Event> = events
                .iter()
                .filter(|r| &r.app_id == id)
                .map(omaha_event)
                .collect();
            if app_events.is_empty() {
                continue;
            }
            let version = prefs
                .apps
                .get(id)
                .map(|r| r.version.clone())
                .or_else(|| removed.get(id).cloned())
                .unwrap_or_default();
            let mut app = RequestApp::new(id.clone(), &version);
            app.updatecheck = None;
            app.events = app_events;
            builder = builder.app(app);
        }
        let request = match builder.build() {
            Ok(r) => r,
            Err(e) => {
                observer.warning(&Warning::general(format!(
                    "event ping not sent: cannot draw a request id: {e}"
                )));
                return;
            }
        };
        if let Err(e) =
            update_check::send_events(self.http, &self.config.server, &self.config.cup, &request)
        {
            observer.warning(&Warning::general(format!("event ping failed: {e}")));
        }
        crash::point("update.reported");
    }

    /// Hands `events` to every configured telemetry sink. A sink that fails
    /// is a warning.
    pub(crate) fn feed_telemetry(&self, events: &[Recorded], observer: &mut dyn Observer) {
        if self.config.telemetry.is_empty() || events.is_empty() {
            return;
        }
        let batch: Vec<types::UpdateEvent> =
            events.iter().map(|r| wit_event(r, self.session)).collect();
        let data_root = self.root.join("telemetry");
        for path in &self.config.telemetry {
            match self.plugins.consume_events(path, &data_root, &batch) {
                Ok(answer) => {
                    if let Err(e) = answer.value {
                        observer.warning(&Warning::general(format!(
                            "telemetry sink {} refused the events: {e}",
                            answer.plugin
                        )));
                    }
                }
                Err(e) => observer.warning(&Warning::general(e.to_string())),
            }
        }
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

fn wit_event(r: &Recorded, session: &str) -> types::UpdateEvent {
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
        app_id: r.app_id.clone(),
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
            download_time_ms: duration_ms(d.duration),
        }),
        timestamp_ms: r.timestamp_ms,
        duration_ms: r.duration_ms,
        session_id: session.to_owned(),
    }
}
