//! Delivering the event outbox (`prefs.outbox`, [`upkeep_core::outbox`]):
//! its unacknowledged events ride along with every request to the update
//! server, the update check included; what the server's CUP-verified
//! answer acknowledges (`"event": [{"status": "ok"}, …]` per app, one per
//! event sent, in order) is marked; every telemetry sink is handed what it
//! has not taken; then what the server and every sink have leaves, and the
//! cap drops the oldest of what is left, with a warning.
//!
//! Delivery is at least once: an answer that is lost, unsigned or fails
//! CUP verification acknowledges nothing, and the events go again with the
//! next request; a crash between an acknowledgement and the write that
//! records it sends them again too.

use std::collections::BTreeMap;
use std::path::Path;

use upkeep_core::crash;
use upkeep_core::http::HttpClient;
use upkeep_core::omaha::{RequestApp, RequestBuilder, Response};
use upkeep_core::outbox::Outbox;
use upkeep_core::state::{AppRecord, Prefs};
use upkeep_core::update_check;
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::types;

use crate::config::Config;
use crate::events::wit_event;
use crate::observer::{Observer, Warning};
use crate::plugins::Plugins;

/// The events one request carried: per app, the sequence numbers of its
/// events in the order they were sent.
#[derive(Debug, Default)]
pub(crate) struct Sent(Vec<(String, Vec<u64>)>);

impl Sent {
    /// Whether the request carried no event.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sequence numbers `response` (verified) acknowledges: the i-th
    /// event status of an app, when `ok`, acknowledges the i-th event sent
    /// for it. An app the answer lacks acknowledges nothing.
    pub(crate) fn acknowledged(&self, response: &Response) -> Vec<u64> {
        let mut out = Vec::new();
        for (app, seqs) in &self.0 {
            let Some(answer) = response.app(app) else {
                continue;
            };
            for (seq, status) in seqs.iter().zip(&answer.event_statuses) {
                if status == "ok" {
                    out.push(*seq);
                }
            }
        }
        out
    }
}

/// Adds the outbox's unacknowledged events to `apps`: to the request app
/// of the same id when there is one, else to an app that only carries
/// events (at its registered version, or the version its latest event
/// recorded once it is gone).
pub(crate) fn attach(
    outbox: &Outbox,
    registered: &BTreeMap<String, AppRecord>,
    apps: &mut Vec<RequestApp>,
) -> Sent {
    let mut latest: BTreeMap<&str, &Version> = BTreeMap::new();
    for entry in outbox.unacked() {
        latest.insert(&entry.app, &entry.version);
    }
    let mut sent: Vec<(String, Vec<u64>)> = Vec::new();
    for entry in outbox.unacked() {
        let index = match apps
            .iter()
            .position(|a| a.appid.as_str().eq_ignore_ascii_case(&entry.app))
        {
            Some(i) => i,
            None => {
                let version = registered
                    .get(&entry.app)
                    .map(|r| &r.version)
                    .or_else(|| latest.get(entry.app.as_str()).copied())
                    .unwrap_or(&entry.version);
                let mut app = RequestApp::new(entry.app.clone(), version);
                app.updatecheck = None;
                if let Some(record) = registered.get(&entry.app) {
                    app.brand = record.brand.clone();
                    app.lang = record.lang.clone();
                }
                apps.push(app);
                apps.len() - 1
            }
        };
        apps[index].events.push(entry.event.clone());
        match sent.iter_mut().find(|(app, _)| *app == entry.app) {
            Some((_, seqs)) => seqs.push(entry.seq),
            None => sent.push((entry.app.clone(), vec![entry.seq])),
        }
    }
    Sent(sent)
}

/// How a telemetry sink is named in the outbox: its configured path.
fn sink_key(path: &Path) -> String {
    path.display().to_string()
}

/// Where the outbox goes: the update server and the telemetry sinks.
pub(crate) struct Reporter<'a> {
    pub(crate) root: &'a Path,
    pub(crate) config: &'a Config,
    pub(crate) http: &'a dyn HttpClient,
    pub(crate) plugins: &'a dyn Plugins,
    pub(crate) session: &'a str,
}

impl Reporter<'_> {
    /// The end of an operation: the unacknowledged events to the server in
    /// one signed ping (unless the server was found unreachable), every
    /// sink fed, what both have removed, the cap applied, and the outbox
    /// written when it changed. Failures are warnings: what the events
    /// report is done, and they wait for the next request.
    pub(crate) fn deliver(
        &self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        server_reachable: bool,
        observer: &mut dyn Observer,
    ) {
        if server_reachable && prefs.outbox.unacked().next().is_some() {
            self.send_ping(prefs, observer);
        }
        self.feed_telemetry(&mut prefs.outbox, observer);
        let sinks: Vec<String> = self.config.telemetry.iter().map(|p| sink_key(p)).collect();
        prefs.outbox.settle(&sinks);
        let dropped = prefs.outbox.enforce_cap(self.config.outbox_cap);
        if dropped > 0 {
            observer.warning(&Warning::general(format!(
                "the event outbox holds at most {} events: dropped the {dropped} oldest \
                 ({} dropped so far)",
                self.config.outbox_cap, prefs.outbox.dropped
            )));
        }
        let on_disk = match Prefs::load(prefs_path) {
            Ok(p) => p,
            Err(e) => {
                observer.warning(&Warning::general(format!(
                    "cannot record the event outbox: {e}"
                )));
                return;
            }
        };
        if on_disk != *prefs {
            if let Err(e) = prefs.save(prefs_path) {
                observer.warning(&Warning::general(format!(
                    "cannot record the event outbox: {e}; delivered events are sent again"
                )));
                return;
            }
            crash::point("outbox.recorded");
        }
    }

    /// Sends the unacknowledged events as one Omaha request (same session),
    /// signed like the update check, and marks what the verified answer
    /// acknowledges.
    fn send_ping(&self, prefs: &mut Prefs, observer: &mut dyn Observer) {
        let mut apps = Vec::new();
        let sent = attach(&prefs.outbox, &prefs.apps, &mut apps);
        let mut builder = RequestBuilder::new(self.config.protocol)
            .updater("upkeep", env!("CARGO_PKG_VERSION"))
            .os(crate::request::this_os())
            .sessionid(self.session);
        for app in apps {
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
        match update_check::exchange(self.http, &self.config.server, &self.config.cup, &request) {
            Ok(exchange) => {
                let acked = sent.acknowledged(&exchange.response);
                prefs.outbox.acknowledge(&acked);
            }
            Err(e) => {
                let kept = prefs.outbox.unacked().count();
                observer.warning(&Warning::general(format!(
                    "event ping failed: {e}; {kept} event(s) wait for the next request"
                )));
            }
        }
        crash::point("update.reported");
    }

    /// Hands every configured telemetry sink the entries it has not taken,
    /// and moves its mark past them when it takes them. A sink that fails
    /// is a warning; it gets them again next time.
    fn feed_telemetry(&self, outbox: &mut Outbox, observer: &mut dyn Observer) {
        let data_root = self.root.join("telemetry");
        for path in &self.config.telemetry {
            let key = sink_key(path);
            let Some(last) = outbox.for_sink(&key).last().map(|e| e.seq) else {
                continue;
            };
            let batch: Vec<types::UpdateEvent> = outbox.for_sink(&key).map(wit_event).collect();
            match self.plugins.consume_events(path, &data_root, &batch) {
                Ok(answer) => match answer.value {
                    Ok(()) => outbox.sink_passed(&key, last),
                    Err(e) => observer.warning(&Warning::general(format!(
                        "telemetry sink {} refused the events: {e}",
                        answer.plugin
                    ))),
                },
                Err(e) => observer.warning(&Warning::general(e.to_string())),
            }
        }
    }
}
