//! Fakes for the client's unit tests: an in-memory update server (CUP
//! signed answers, a signed TUF repository, payloads, fault switches) and
//! stub plugins that record what they were asked.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p256::ecdsa::SigningKey;
use upkeep_core::cup::{CupClient, CupServer, RequestParams};
use upkeep_core::download::DownloadOptions;
use upkeep_core::http::{HttpClient, HttpError, HttpResponse};
use upkeep_core::omaha::{
    App, AppId, AppStatus, Event, Manifest, Package, Protocol, Request, Response, UpdateCheck,
    UpdateCheckStatus, parse_request,
};
use upkeep_core::state::PluginRef;
use upkeep_core::tuf::repository::Repository;
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::{existence, installer, qualifier, types};
use upkeep_plugin_host::{ExistenceInput, InstallInput, QualifyInput};

use crate::config::Config;
use crate::plugins::{
    Answer, ExistenceChecker, Installer, PluginFailure, PluginLoader, Qualifier, Role,
    TelemetrySink,
};

/// A value shared between a test and the client it hands it to.
pub struct Shared<T>(pub Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The base URL of the fake server.
pub const BASE: &str = "http://fake.test";

/// A release the fake server offers.
#[derive(Clone)]
struct Offer {
    version: Version,
    files: Vec<(String, Vec<u8>)>,
    arguments: Option<String>,
}

/// An update server in memory.
pub struct FakeServer {
    cup: CupServer,
    /// The signed repository.
    pub repo: Mutex<Repository>,
    offers: Mutex<BTreeMap<String, Offer>>,
    /// Every connection is refused.
    pub down: AtomicBool,
    /// Update answers are altered after signing.
    pub tamper: AtomicBool,
    /// Answers acknowledge the request's events (on unless turned off).
    pub acknowledge: AtomicBool,
    /// Offers are made to apps at a newer version too (a server moving
    /// apps down, asked or not).
    pub offer_older: AtomicBool,
    /// Bytes served instead of a payload, by file name.
    pub corrupt: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Every request posted, parsed.
    pub requests: Mutex<Vec<Request>>,
    /// The `daystart.elapsed_days` answers carry (none unless set).
    pub elapsed_days: Mutex<Option<i64>>,
    /// A patch every offer names for its packages: file name, hex SHA-256
    /// and size, as the answer gives them (none unless set).
    pub diff: Mutex<Option<(String, String, u64)>>,
}

impl FakeServer {
    pub fn new() -> Self {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        Self {
            cup: CupServer::new(1, SigningKey::from_slice(&[9u8; 32]).unwrap()),
            repo: Mutex::new(Repository::new(expires, false).unwrap()),
            offers: Mutex::new(BTreeMap::new()),
            down: AtomicBool::new(false),
            tamper: AtomicBool::new(false),
            acknowledge: AtomicBool::new(true),
            offer_older: AtomicBool::new(false),
            corrupt: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
            elapsed_days: Mutex::new(None),
            diff: Mutex::new(None),
        }
    }

    /// Publishes `version` of `app` (signed in TUF) and offers it.
    pub fn publish(
        &self,
        app: &str,
        version: &str,
        files: &[(&str, &[u8])],
        arguments: Option<&str>,
    ) {
        let version: Version = version.parse().unwrap();
        let mut repo = self.repo.lock().unwrap();
        for (name, data) in files {
            repo.add_target("targets", &format!("apps/{app}/{version}/{name}"), data)
                .unwrap();
        }
        repo.bump_targets("targets").unwrap();
        repo.bump_snapshot().unwrap();
        repo.bump_timestamp().unwrap();
        self.offer_only(app, &version, files, arguments);
    }

    /// Offers `version` of `app` without signing it in TUF.
    pub fn offer_only(
        &self,
        app: &str,
        version: &Version,
        files: &[(&str, &[u8])],
        arguments: Option<&str>,
    ) {
        self.offers.lock().unwrap().insert(
            app.to_owned(),
            Offer {
                version: version.clone(),
                files: files
                    .iter()
                    .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
                    .collect(),
                arguments: arguments.map(str::to_owned),
            },
        );
    }

    /// The pinned CUP key of this server.
    pub fn cup_client(&self) -> CupClient {
        CupClient::new(1, *self.cup.verifying_key())
    }

    /// A configuration for this server, with the pinned TUF root written
    /// into `dir`.
    pub fn config(&self, dir: &Path) -> Config {
        let tuf_root = dir.join("root.json");
        let initial = self.repo.lock().unwrap().initial_root().unwrap().to_vec();
        std::fs::write(&tuf_root, initial).unwrap();
        Config {
            path: dir.join("config.toml"),
            server: BASE.to_owned(),
            protocol: Protocol::Json31,
            tuf_root,
            cup: self.cup_client(),
            telemetry: Vec::new(),
            download: DownloadOptions::default(),
            payload_cache_bytes: crate::payload_cache::DEFAULT_CAP_BYTES,
            check_interval: Duration::from_secs(300 * 60),
            outbox_cap: upkeep_core::outbox::DEFAULT_CAP,
            rollback_allowed: false,
            set_keys: Vec::new(),
            updater: None,
            qualification: None,
            service: crate::config::ServiceConfig::default(),
        }
    }

    /// The events the server received, as (app, eventtype, eventresult,
    /// errorcat, errorcode).
    pub fn events(&self) -> Vec<(String, i64, i64, i64, i64)> {
        let requests = self.requests.lock().unwrap();
        let mut out = Vec::new();
        for r in requests.iter() {
            for app in &r.apps {
                for e in &app.events {
                    out.push((
                        app.appid.as_str().to_owned(),
                        e.eventtype.code(),
                        e.eventresult.code(),
                        e.errorcat.map_or(0, |c| c.code()),
                        e.errorcode.unwrap_or(0),
                    ));
                }
            }
        }
        out
    }

    /// Every event received, with its app, in arrival order.
    pub fn received(&self) -> Vec<(String, Event)> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .flat_map(|r| r.apps.iter())
            .flat_map(|app| {
                app.events
                    .iter()
                    .map(|e| (app.appid.as_str().to_owned(), e.clone()))
            })
            .collect()
    }

    fn answer(&self, request: &Request) -> Response {
        let offers = self.offers.lock().unwrap();
        let mut response = Response::new(Protocol::Json31);
        response.daystart.elapsed_days = *self.elapsed_days.lock().unwrap();
        for app in &request.apps {
            let id = app.appid.as_str();
            let installed: Version = app.version.parse().unwrap_or_default();
            let mut answer = App::new(AppId::new(id), AppStatus::Ok);
            if self.acknowledge.load(Ordering::SeqCst) {
                answer.event_statuses = app.events.iter().map(|_| "ok".to_owned()).collect();
            }
            // Like the reference server, an app that only carries events
            // gets `noupdate`.
            answer.updatecheck = Some(match offers.get(id) {
                Some(offer)
                    if app.updatecheck.is_some()
                        && (offer.version > installed
                            || (self.offer_older.load(Ordering::SeqCst)
                                && offer.version < installed)) =>
                {
                    let mut uc = update_check(id, offer);
                    if let (Some((name, sha, size)), Some(m)) =
                        (self.diff.lock().unwrap().clone(), uc.manifest.as_mut())
                    {
                        for p in &mut m.packages {
                            p.namediff = Some(name.clone());
                            p.hashdiff_sha256 = Some(sha.clone());
                            p.sizediff = size;
                        }
                        uc.diff_urls = uc.urls.clone();
                    }
                    uc
                }
                _ => UpdateCheck::with_status(UpdateCheckStatus::NoUpdate),
            });
            response.apps.push(answer);
        }
        response
    }
}

fn update_check(app: &str, offer: &Offer) -> UpdateCheck {
    let mut uc = UpdateCheck::with_status(UpdateCheckStatus::Ok);
    uc.next_version = Some(offer.version.clone());
    uc.urls = vec![format!("{BASE}/targets/apps/{app}/{}/", offer.version)];
    uc.manifest = Some(Manifest {
        version: offer.version.clone(),
        prodversionmin: None,
        run: None,
        arguments: offer.arguments.clone(),
        packages: offer
            .files
            .iter()
            .map(|(name, data)| {
                let sha = upkeep_core::cup::sha256(data);
                Package {
                    name: name.clone(),
                    hash_sha256: Some(hex::encode(sha)),
                    size: data.len() as u64,
                    ..Package::default()
                }
            })
            .collect(),
        actions: Vec::new(),
    });
    uc
}

fn response(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status,
        headers,
        body: Box::new(Cursor::new(body)),
    }
}

impl HttpClient for Shared<FakeServer> {
    fn get(&self, url: &str, range_start: Option<u64>) -> Result<HttpResponse, HttpError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(HttpError::Connect {
                url: url.into(),
                reason: "connection refused".into(),
            });
        }
        let path = url.strip_prefix(BASE).unwrap_or(url);
        let body = if let Some(meta) = path.strip_prefix("/tuf/") {
            self.repo.lock().unwrap().serve(&format!("metadata/{meta}"))
        } else if let Some(target) = path.strip_prefix("/targets/") {
            let name = target.rsplit('/').next().unwrap_or_default().to_owned();
            self.corrupt
                .lock()
                .unwrap()
                .get(&name)
                .cloned()
                .or_else(|| {
                    let offers = self.offers.lock().unwrap();
                    offers
                        .values()
                        .flat_map(|o| o.files.iter())
                        .find(|(n, _)| *n == name)
                        .map(|(_, d)| d.clone())
                })
        } else {
            None
        };
        Ok(match body {
            None => response(404, Vec::new(), Vec::new()),
            Some(mut b) => {
                let start = range_start.unwrap_or(0).min(b.len() as u64) as usize;
                b.drain(..start);
                let len = b.len().to_string();
                response(
                    if start > 0 { 206 } else { 200 },
                    vec![("content-length".into(), len)],
                    b,
                )
            }
        })
    }

    fn post(&self, url: &str, _content_type: &str, body: &[u8]) -> Result<HttpResponse, HttpError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(HttpError::Connect {
                url: url.into(),
                reason: "connection refused".into(),
            });
        }
        let request = parse_request(body, None).expect("the client sends valid requests");
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let params = RequestParams::from_query(query).unwrap();
        let answer = self.answer(&request);
        self.requests.lock().unwrap().push(request);
        let mut text = answer.to_body(Protocol::Json31).into_bytes();
        let proof = self.cup.sign_response(&params, body, &text).unwrap();
        if self.tamper.load(Ordering::SeqCst) {
            text.push(b' ');
        }
        Ok(response(
            200,
            vec![("X-Cup-Server-Proof".into(), proof)],
            text,
        ))
    }
}

/// What a stub plugin was asked.
#[derive(Debug, Clone)]
pub enum Call {
    Install(InstallInput),
    Existence(ExistenceInput),
    Qualify(Role, QualifyInput),
}

/// Plugins that do what the test says and remember what they were asked.
#[derive(Default)]
pub struct StubPlugins {
    pub calls: Mutex<Vec<Call>>,
    /// The installer fails with this code and message.
    pub install_fails: Mutex<Option<(i32, String)>>,
    /// The existence checker answers absent.
    pub absent: AtomicBool,
    /// Qualifier-world plugins refuse with this reason.
    pub refuse: Mutex<Option<String>>,
    /// The events each telemetry sink took, by its path, in order.
    pub telemetry: Mutex<Vec<(PathBuf, types::UpdateEvent)>>,
    /// Telemetry sinks (by path) that refuse the events.
    pub failing_sinks: Mutex<Vec<PathBuf>>,
}

impl StubPlugins {
    pub fn installs(&self) -> Vec<InstallInput> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Call::Install(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }
}

fn answer<T>(value: T) -> Result<Answer<T>, PluginFailure> {
    Ok(Answer {
        plugin: "stub".to_owned(),
        value,
    })
}

impl PluginLoader for Shared<StubPlugins> {
    fn identify(&self, path: &Path, _role: Role) -> Result<PluginRef, PluginFailure> {
        Ok(PluginRef {
            path: PathBuf::from(path),
            sha256: "00".repeat(32),
        })
    }
}

impl Installer for Shared<StubPlugins> {
    fn install(
        &self,
        _plugin: &PluginRef,
        input: &InstallInput,
        _app: types::AppInfo,
    ) -> Result<Answer<Result<installer::InstallSuccess, installer::InstallError>>, PluginFailure>
    {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Install(input.clone()));
        if let Some((code, message)) = self.install_fails.lock().unwrap().clone() {
            return answer(Err(installer::InstallError {
                code,
                extra_code: 0,
                message,
            }));
        }
        if input.operation != installer::Operation::Uninstall {
            std::fs::write(input.install_dir.join("installed.txt"), &input.to_version).unwrap();
        }
        answer(Ok(installer::InstallSuccess {
            message: Some("done".to_owned()),
        }))
    }
}

impl ExistenceChecker for Shared<StubPlugins> {
    fn check_existence(
        &self,
        _plugin: &PluginRef,
        input: &ExistenceInput,
    ) -> Result<Answer<existence::Presence>, PluginFailure> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Existence(input.clone()));
        answer(if self.absent.load(Ordering::SeqCst) {
            existence::Presence::Absent
        } else {
            existence::Presence::Present
        })
    }
}

impl Qualifier for Shared<StubPlugins> {
    fn qualify(
        &self,
        _plugin: &PluginRef,
        role: Role,
        input: &QualifyInput,
    ) -> Result<Answer<qualifier::Verdict>, PluginFailure> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Qualify(role, input.clone()));
        answer(match self.refuse.lock().unwrap().clone() {
            Some(why) => qualifier::Verdict::Fail(why),
            None => qualifier::Verdict::Pass,
        })
    }
}

impl TelemetrySink for Shared<StubPlugins> {
    fn consume_events(
        &self,
        path: &Path,
        _data_root: &Path,
        events: &[types::UpdateEvent],
    ) -> Result<Answer<Result<(), String>>, PluginFailure> {
        if self.failing_sinks.lock().unwrap().iter().any(|p| p == path) {
            return answer(Err("the sink is full".to_owned()));
        }
        self.telemetry
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| (path.to_path_buf(), e.clone())));
        answer(Ok(()))
    }
}
