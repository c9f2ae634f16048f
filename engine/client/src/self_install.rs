//! Installing a verified release of upkeep itself: side by side as
//! `versions/<v>/upkeep` with unqualified local prefs, or (single binary)
//! staged beside the running binary for the commit to rename in place.
//! Every copy is checked against the signed SHA-256.

use std::path::Path;

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle;
use upkeep_core::state::{Prefs, StagedBinary};
use upkeep_core::version::Version;

use crate::config::UpdaterMode;
use crate::error::{SelfInstallError, UpdateError};
use crate::files::{copy_executable, copy_file_synced};
use crate::observer::Notice;
use crate::pass::Run;

/// Checks that `copy` has SHA-256 `sha256`.
fn check_copy(copy: &Path, sha256: &str) -> Result<(), SelfInstallError> {
    let got = lifecycle::file_sha256(copy).map_err(|source| SelfInstallError::Io {
        path: copy.to_path_buf(),
        source,
    })?;
    if !got.eq_ignore_ascii_case(sha256) {
        return Err(SelfInstallError::CopyMismatch {
            path: copy.to_path_buf(),
            got,
            want: sha256.to_owned(),
        });
    }
    Ok(())
}

fn io((path, source): (std::path::PathBuf, std::io::Error)) -> SelfInstallError {
    SelfInstallError::Io { path, source }
}

impl Run<'_, '_> {
    /// Installs a release of upkeep itself, `binary` (downloaded and
    /// verified to have SHA-256 `sha256`): side by side (kept as it is
    /// when that very binary is already there, so qualification attempts
    /// add up), or staged beside the running binary.
    pub(crate) fn install_updater(
        &mut self,
        next: &Version,
        binary: &Path,
        sha256: &str,
    ) -> Result<(), UpdateError> {
        let root = self.env.root;
        match self.env.config.updater_mode() {
            UpdaterMode::SideBySide => {
                let dest = lifecycle::binary_path(root, next);
                let local_path = lifecycle::local_prefs_path(root, next);
                if check_copy(&dest, sha256).is_ok()
                    && Prefs::load(&local_path).is_ok_and(|l| l.qualification.is_some())
                {
                    self.observer.notice(&Notice::AlreadyStaged(next.clone()));
                    return Ok(());
                }
                let fail = |source| UpdateError::SelfInstall {
                    version: next.clone(),
                    source,
                };
                appdir::fresh_version_dir(root, next).map_err(|source| {
                    fail(SelfInstallError::Io {
                        path: appdir::version_dir(root, next),
                        source,
                    })
                })?;
                crash::point("self-install.dir-created");
                let result = (|| {
                    copy_executable(binary, &dest).map_err(io)?;
                    check_copy(&dest, sha256)?;
                    crash::point("self-install.binary-written");
                    lifecycle::write_unqualified(root, next)?;
                    crash::point("self-install.local-prefs-written");
                    Ok::<(), SelfInstallError>(())
                })();
                result.map_err(|e| {
                    let _ = appdir::discard(root, next);
                    fail(e)
                })
            }
            UpdaterMode::SingleBinary => {
                let exe = match self.env.exe {
                    Some(exe) => exe.to_path_buf(),
                    None => std::env::current_exe().map_err(UpdateError::NoRunningBinary)?,
                };
                let staged = exe.with_file_name(format!(
                    "{}{}",
                    lifecycle::STAGING_PREFIXES[0],
                    std::process::id()
                ));
                let result = copy_file_synced(binary, &staged)
                    .map_err(io)
                    .and_then(|()| check_copy(&staged, sha256));
                match result {
                    Ok(()) => {
                        crash::point("self-install.binary-staged");
                        self.staged_binary = Some(StagedBinary {
                            path: exe,
                            staged,
                            sha256: sha256.to_ascii_lowercase(),
                        });
                        Ok(())
                    }
                    Err(source) => {
                        let _ = std::fs::remove_file(&staged);
                        Err(UpdateError::SelfStage {
                            version: next.clone(),
                            exe,
                            source,
                        })
                    }
                }
            }
        }
    }
}
