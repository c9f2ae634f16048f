//! Applying one offered update: every package must be a release the TUF
//! targets metadata signed, with the same hash and length the response
//! gives; each is downloaded (SHA-256 while streaming, capped at the
//! length, resumable) into `downloads/<app>/<version>/`, then installed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use upkeep_core::app_command::AppCommand;
use upkeep_core::crash;
use upkeep_core::download::{
    DownloadError, DownloadProgress, DownloadReport, DownloadRequest, Downloader,
};
use upkeep_core::http::HttpTransport;
use upkeep_core::offer::{OfferedPackage, agree, offered_packages};
use upkeep_core::omaha::{EventType, UpdateCheck};
use upkeep_core::state::AppRecord;
use upkeep_core::tuf::metadata::TargetFile;
use upkeep_core::tuf::{SystemClock, TargetInfo, Updater, UpdaterConfig, init_trusted_root};
use upkeep_core::update_check::target_path;
use upkeep_core::version::Version;

use crate::error::{TufRefreshError, UpdateError};
use crate::events::{Recorded, event};
use crate::files::duration_ms;
use crate::observer::{Notice, Progress, Warning};
use crate::pass::{Run, Tuf};
use crate::patch::{DiffFailure, PatchOutcome, record_verified};

/// What applying one update did.
pub(crate) struct Applied {
    pub(crate) downloads: Vec<DownloadReport>,
    /// The app commands the release's signed metadata brings.
    pub(crate) commands: BTreeMap<String, AppCommand>,
    /// Whether a patch was used: `Ok` when every patch tried worked, the
    /// failure of one that did not (its file was downloaded whole).
    pub(crate) diff: Option<Result<(), DiffFailure>>,
    /// Wall time of the installer: plugin load and call.
    pub(crate) install_time: Duration,
}

impl<'a> Run<'a, '_> {
    /// The TUF client after a full refresh (done once per pass).
    fn tuf(&mut self) -> Result<&mut Tuf<'a>, UpdateError> {
        let env = self.env;
        let tuf = self
            .tuf
            .get_or_insert_with(|| refresh_tuf(env).map_err(Arc::new));
        tuf.as_mut().map_err(|e| UpdateError::TufRefresh(e.clone()))
    }

    /// The signed target at `path` (after the pass's one refresh).
    pub(crate) fn tuf_target(&mut self, path: &str) -> Result<TargetInfo, UpdateError> {
        self.tuf()?
            .get_target_info(path)
            .map_err(|source| UpdateError::TufTarget {
                path: path.to_owned(),
                source,
            })
    }

    /// `Err(Cancelled)` once the pass was asked to stop.
    pub(crate) fn check_cancel(&self) -> Result<(), UpdateError> {
        if self.env.cancel.is_cancelled() {
            return Err(UpdateError::Cancelled);
        }
        Ok(())
    }

    /// The app commands in the release's signed `custom.upkeep.commands`
    /// (name → command line, its program inside the live version); one
    /// that cannot be used is left out with a warning.
    fn release_commands(&mut self, id: &str, file: &TargetFile) -> BTreeMap<String, AppCommand> {
        let listed = file
            .custom
            .as_ref()
            .and_then(|c| c.get("upkeep"))
            .and_then(|u| u.get("commands"))
            .and_then(serde_json::Value::as_object);
        let mut commands = BTreeMap::new();
        for (name, line) in listed.into_iter().flatten() {
            let parsed = line
                .as_str()
                .ok_or_else(|| "not a string".to_owned())
                .and_then(|l| AppCommand::parse_release(l).map_err(|e| e.to_string()));
            match parsed {
                Ok(command) => {
                    commands.insert(name.clone(), command);
                }
                Err(why) => self.observer.warning(&Warning::app(
                    id,
                    format!("the release's command {name:?} is left out: {why}"),
                )),
            }
        }
        commands
    }

    /// Downloads, verifies and installs an offered update.
    pub(crate) fn apply(
        &mut self,
        id: &str,
        record: &AppRecord,
        check: &UpdateCheck,
        next: &Version,
        installer_data: Option<&str>,
    ) -> Result<Applied, UpdateError> {
        let packages = offered_packages(check).map_err(|source| UpdateError::BadOffer {
            version: next.clone(),
            source,
        })?;
        // Every package must be a release the TUF targets metadata signed.
        let mut agreed = Vec::new();
        let mut commands = BTreeMap::new();
        for package in &packages {
            let path = target_path(id, next, &package.name);
            let target = self.tuf_target(&path)?;
            if agreed.is_empty() {
                commands = self.release_commands(id, &target.file);
            }
            let file = agree(package, &target).map_err(UpdateError::Disagreement)?;
            agreed.push((package, file));
        }
        let root = self.env.root;
        let payload_dir = root.join("downloads").join(id).join(next.to_string());
        let mut reports = Vec::new();
        let mut verified = Vec::new();
        let mut diff = None;
        for (package, file) in agreed {
            self.check_cancel()?;
            let request = DownloadRequest {
                urls: package.urls.clone(),
                length: file.length,
                sha256: file.sha256,
                staging: root
                    .join("downloads/.partial")
                    .join(id)
                    .join(next.to_string())
                    .join(&package.name),
                dest: payload_dir.join(&package.name),
            };
            // A file already in place is verified and reused; else a patch
            // from the installed version's copy is tried first.
            let outcome = if request.dest.exists() {
                PatchOutcome::NotTried
            } else {
                self.try_patch(id, &record.version, next, package, &file, &request)
            };
            let report = match outcome {
                PatchOutcome::Patched(report) => {
                    diff.get_or_insert(Ok(()));
                    report
                }
                other => {
                    if let PatchOutcome::Failed(failure) = other {
                        diff = Some(Err(failure));
                    }
                    self.download(id, package, &request)?
                }
            };
            reports.push(report);
            verified.push((request.dest, hex::encode(file.sha256)));
        }
        crash::point("update.downloaded");
        // The last moment to stop: from here on the install runs to its end.
        self.check_cancel()?;
        let install_started = Instant::now();
        if record.updater {
            let [(binary, sha256)] = verified.as_slice() else {
                return Err(UpdateError::UpdaterFileCount {
                    version: next.clone(),
                    count: verified.len(),
                });
            };
            self.install_updater(next, binary, sha256)?;
        } else {
            self.install(id, record, check, next, &payload_dir, installer_data)?;
        }
        // Indexed only now: the installer saw the payload directory as the
        // packages alone.
        record_verified(&payload_dir, &verified);
        crash::point("install.done");
        Ok(Applied {
            downloads: reports,
            diff,
            commands,
            install_time: install_started.elapsed(),
        })
    }

    /// Downloads `request` (the file `file` of `id`) with progress and
    /// notices; a failure is the caller's to report.
    pub(crate) fn fetch(
        &mut self,
        id: &str,
        file: &str,
        request: &DownloadRequest,
    ) -> Result<DownloadReport, DownloadError> {
        let mut options = self.env.config.download.clone();
        options.cancel = self.env.cancel.clone();
        let downloader = Downloader::new(self.env.http, options);
        let observer = &mut *self.observer;
        let mut current_url = String::new();
        let mut progress = |p: &DownloadProgress<'_>| {
            if current_url != p.url {
                current_url = p.url.to_owned();
                observer.notice(&Notice::Downloading {
                    app: id.to_owned(),
                    url: p.url.to_owned(),
                    total: p.total,
                });
            }
            observer.progress(&Progress {
                app: id,
                file,
                url: p.url,
                received: p.received,
                total: p.total,
            });
        };
        let result = downloader.download(request, &mut progress);
        match &result {
            Ok(report) => self.observer.notice(&Notice::Downloaded {
                app: id.to_owned(),
                file: file.to_owned(),
                bytes: report.total_bytes,
                took: report.duration,
                reused: report.reused,
            }),
            Err(_) => self.observer.notice(&Notice::DownloadFailed {
                app: id.to_owned(),
                file: file.to_owned(),
            }),
        }
        result
    }

    fn download(
        &mut self,
        id: &str,
        package: &OfferedPackage,
        request: &DownloadRequest,
    ) -> Result<DownloadReport, UpdateError> {
        let started = Instant::now();
        match self.fetch(id, &package.name, request) {
            Ok(report) => Ok(report),
            Err(source) => {
                let error = match source {
                    DownloadError::Cancelled { .. } => UpdateError::Cancelled,
                    source => UpdateError::Download {
                        file: package.name.clone(),
                        source,
                    },
                };
                let mut ev = event(EventType::Download, Some(&error), &Version::default(), None);
                ev.previousversion = None;
                let mut recorded = Recorded::new(id, ev);
                recorded.download = Some(DownloadReport {
                    url: package.urls.first().cloned().unwrap_or_default(),
                    downloaded_bytes: 0,
                    total_bytes: request.length,
                    resumed_from: 0,
                    reused: false,
                    duration: started.elapsed(),
                });
                recorded.duration_ms = Some(duration_ms(started.elapsed()));
                self.events.push(recorded);
                Err(error)
            }
        }
    }
}

/// Loads the trusted TUF metadata (from the pinned root on first use) and
/// refreshes it from the server.
fn refresh_tuf<'a>(env: &crate::pass::Env<'a>) -> Result<Tuf<'a>, TufRefreshError> {
    let dir: PathBuf = env.root.join("tuf");
    let pinned = &env.config.tuf_root;
    if !dir.join("root.json").exists() {
        let bytes =
            std::fs::read(pinned).map_err(|source| TufRefreshError::PinnedRootUnreadable {
                path: pinned.clone(),
                source,
            })?;
        init_trusted_root(&dir, &bytes).map_err(|source| TufRefreshError::PinnedRootRefused {
            path: pinned.clone(),
            source,
        })?;
    }
    let url = format!("{}/tuf/", env.config.server);
    let mut updater = Updater::new(
        &dir,
        &url,
        HttpTransport::new(env.http),
        SystemClock,
        UpdaterConfig::default(),
    )
    .map_err(|source| TufRefreshError::TrustedUnusable {
        dir: dir.clone(),
        source,
    })?;
    updater
        .refresh()
        .map_err(|source| TufRefreshError::Refused { url, source })?;
    Ok(updater)
}
