//! The operations: which files each call writes or removes, and the
//! optional `systemctl` runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use upkeep_shim_abi::ShimConfig;
use upkeep_shim_abi::export::{ShimFailure, ShimV1};

use crate::config::{Reload, SystemdConfig};
use crate::error::SystemdError;
use crate::fsio;
use crate::quote::{escape_specifiers, exec_command_line};
use crate::units::{self, SOCKETS_WANTS_DIR, TIMERS_WANTS_DIR, UnitNames};

/// Whether a service's arguments make it the daemon.
fn is_daemon(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == units::DAEMON_COMMAND)
}

/// How much of `systemctl`'s standard error goes into an error message.
const STDERR_TAIL: usize = 1024;

/// One open instance of the systemd shim.
#[derive(Debug, Clone)]
pub struct SystemdShim {
    config: SystemdConfig,
    names: UnitNames,
}

impl SystemdShim {
    /// A shim writing units as `config` says.
    pub fn new(config: SystemdConfig) -> Self {
        let names = UnitNames::new(&config.name);
        SystemdShim { config, names }
    }

    /// The configuration.
    pub fn config(&self) -> &SystemdConfig {
        &self.config
    }

    /// The unit names.
    pub fn names(&self) -> &UnitNames {
        &self.names
    }

    /// Writes `<name>.service` running `exe` with `args`. When the command
    /// is the daemon (`args[0]` is `daemon`), the service is long-running
    /// and socket-activated: `<name>.socket` listens on `ipc.sock` beside
    /// `exe` and is enabled (and, with `reload`, restarted so it listens
    /// at the new path); otherwise the service is a oneshot and a socket
    /// unit left from before is removed.
    pub fn register_service(&self, exe: &str, args: &[String]) -> Result<(), SystemdError> {
        let exec = exec_command_line(exe, args)?;
        let daemon = is_daemon(args);
        self.write_service(exe, &exec, daemon)?;
        tracing::info!(unit = %self.names.service, dir = %self.config.unit_dir.display(), daemon, "registered service");
        if !daemon {
            self.remove_socket()?;
        }
        self.daemon_reload()?;
        if daemon {
            self.systemctl(&["restart", &self.names.socket])?;
        }
        Ok(())
    }

    /// `<name>.service` (and for the daemon `<name>.socket`, enabled).
    fn write_service(&self, exe: &str, exec: &str, daemon: bool) -> Result<(), SystemdError> {
        if !daemon {
            return fsio::write_atomic(
                &self.unit_path(&self.names.service),
                units::service_unit(&self.config, exec).as_bytes(),
            );
        }
        let dir = Path::new(exe).parent().unwrap_or(Path::new("/"));
        let listen = dir.join(units::DAEMON_SOCKET_FILE);
        fsio::write_atomic(
            &self.unit_path(&self.names.socket),
            units::socket_unit(
                &self.config,
                &escape_specifiers(&listen.display().to_string()),
            )
            .as_bytes(),
        )?;
        fsio::write_atomic(
            &self.unit_path(&self.names.service),
            units::daemon_service_unit(&self.config, exec).as_bytes(),
        )?;
        fsio::symlink_atomic(&self.socket_wants_target(), &self.socket_wants_link())
    }

    /// Removes `<name>.socket` and its enabling link (missing is fine);
    /// whether there was anything.
    fn remove_socket(&self) -> Result<bool, SystemdError> {
        let socket = self.unit_path(&self.names.socket);
        if fsio::exists(&socket)
            && let Err(e) = self.systemctl(&["stop", &self.names.socket])
        {
            tracing::warn!("{e}");
        }
        let mut removed = fsio::remove(&self.socket_wants_link())?;
        removed |= fsio::remove(&socket)?;
        Ok(removed)
    }

    /// Rewrites the `ExecStart=` of every registered service
    /// (`<name>.service`, `<name>-wake.service`) to `exe` with `args`, each
    /// file replaced atomically. Fails if neither exists.
    pub fn swap_service(&self, exe: &str, args: &[String]) -> Result<(), SystemdError> {
        let exec = exec_command_line(exe, args)?;
        let service = self.unit_path(&self.names.service);
        let wake = self.unit_path(&self.names.wake_service);
        let (has_service, has_wake) = (fsio::exists(&service), fsio::exists(&wake));
        if !has_service && !has_wake {
            return Err(SystemdError::NothingToSwap {
                dir: self.config.unit_dir.clone(),
                service: self.names.service.clone(),
                wake: self.names.wake_service.clone(),
            });
        }
        if has_wake {
            fsio::write_atomic(
                &wake,
                units::wake_service_unit(&self.config, &exec).as_bytes(),
            )?;
        }
        if has_service {
            self.write_service(exe, &exec, is_daemon(args))?;
        }
        tracing::info!(exe, "swapped services");
        self.daemon_reload()
    }

    /// Removes `<name>.service` (a missing file is fine). A running
    /// instance is not stopped: it may be the engine itself, uninstalling.
    pub fn unregister_service(&self) -> Result<(), SystemdError> {
        let socket = self.remove_socket()?;
        if fsio::remove(&self.unit_path(&self.names.service))? || socket {
            tracing::info!(unit = %self.names.service, "unregistered service");
            self.daemon_reload()?;
        }
        Ok(())
    }

    /// Writes `<name>-wake.service` running `exe` with `args` and
    /// `<name>-wake.timer` firing `every`, and enables the timer (the link
    /// in `timers.target.wants/` that `systemctl enable` would make).
    pub fn register_wake(
        &self,
        every: Duration,
        exe: &str,
        args: &[String],
    ) -> Result<(), SystemdError> {
        let exec = exec_command_line(exe, args)?;
        fsio::write_atomic(
            &self.unit_path(&self.names.wake_service),
            units::wake_service_unit(&self.config, &exec).as_bytes(),
        )?;
        fsio::write_atomic(
            &self.unit_path(&self.names.timer),
            units::timer_unit(&self.config, every).as_bytes(),
        )?;
        fsio::symlink_atomic(&self.wants_target(), &self.wants_link())?;
        tracing::info!(unit = %self.names.timer, seconds = every.as_secs(), "registered wake");
        self.daemon_reload()?;
        self.systemctl(&["start", &self.names.timer])
    }

    /// Disables and removes the timer and its service (missing files are
    /// fine). With `reload` set the timer is stopped first; a failure to
    /// stop it (say, systemd never loaded it) does not keep the files.
    pub fn unregister_wake(&self) -> Result<(), SystemdError> {
        let timer = self.unit_path(&self.names.timer);
        if fsio::exists(&timer)
            && let Err(e) = self.systemctl(&["stop", &self.names.timer])
        {
            tracing::warn!("{e}");
        }
        let mut removed = fsio::remove(&self.wants_link())?;
        removed |= fsio::remove(&timer)?;
        removed |= fsio::remove(&self.unit_path(&self.names.wake_service))?;
        if removed {
            tracing::info!(unit = %self.names.timer, "unregistered wake");
            self.daemon_reload()?;
        }
        Ok(())
    }

    /// What is registered: each unit file present and its `ExecStart=` (or
    /// timer settings).
    pub fn describe(&self) -> Result<String, SystemdError> {
        let dir = &self.config.unit_dir;
        let mut lines = Vec::new();
        for (unit, keys) in [
            (&self.names.service, &["ExecStart="][..]),
            (&self.names.socket, &["ListenStream="][..]),
            (&self.names.timer, &["OnUnitActiveSec=", "OnBootSec="][..]),
            (&self.names.wake_service, &["ExecStart="][..]),
        ] {
            let path = self.unit_path(unit);
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SystemdError::io(path, e)),
            };
            let mut found: Vec<&str> = text
                .lines()
                .filter(|l| keys.iter().any(|k| l.starts_with(k)))
                .collect();
            if found.is_empty() {
                found.push("(no setting upkeep wrote: edited by hand?)");
            }
            let mut line = format!("  {unit}: {}", found.join(", "));
            if *unit == self.names.timer {
                line.push_str(if fsio::exists(&self.wants_link()) {
                    ", enabled"
                } else {
                    ", not enabled"
                });
            }
            lines.push(line);
        }
        let reload = match self.config.reload {
            Reload::None => "",
            Reload::System => " (systemctl daemon-reload after changes)",
            Reload::User => " (systemctl --user daemon-reload after changes)",
        };
        if lines.is_empty() {
            return Ok(format!(
                "systemd: no units for {:?} in {}{reload}",
                self.config.name,
                dir.display()
            ));
        }
        Ok(format!(
            "systemd units for {:?} in {}{reload}:\n{}",
            self.config.name,
            dir.display(),
            lines.join("\n")
        ))
    }

    fn unit_path(&self, unit: &str) -> PathBuf {
        self.config.unit_dir.join(unit)
    }

    fn wants_link(&self) -> PathBuf {
        self.config
            .unit_dir
            .join(TIMERS_WANTS_DIR)
            .join(&self.names.timer)
    }

    /// Relative, like the links distributions ship, so the tree stays valid
    /// if it is assembled under another root.
    fn wants_target(&self) -> PathBuf {
        Path::new("..").join(&self.names.timer)
    }

    fn socket_wants_link(&self) -> PathBuf {
        self.config
            .unit_dir
            .join(SOCKETS_WANTS_DIR)
            .join(&self.names.socket)
    }

    fn socket_wants_target(&self) -> PathBuf {
        Path::new("..").join(&self.names.socket)
    }

    fn daemon_reload(&self) -> Result<(), SystemdError> {
        self.systemctl(&["daemon-reload"])
    }

    /// Runs `systemctl [--user] <args>` if `reload` asks for it, else
    /// nothing.
    fn systemctl(&self, args: &[&str]) -> Result<(), SystemdError> {
        let scope: &[&str] = match self.config.reload {
            Reload::None => return Ok(()),
            Reload::System => &[],
            Reload::User => &["--user"],
        };
        let program = &self.config.systemctl;
        let command = std::iter::once(program.display().to_string())
            .chain(scope.iter().chain(args).map(|s| s.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(%command, "running");
        let output = Command::new(program)
            .args(scope)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| SystemdError::Systemctl {
                command: command.clone(),
                detail: format!("cannot run: {e}"),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let tail = match stderr.char_indices().rev().nth(STDERR_TAIL) {
            Some((i, _)) => &stderr[i..],
            None => stderr,
        };
        Err(SystemdError::Systemctl {
            command,
            detail: format!("{}: {tail}", output.status),
        })
    }
}

impl ShimV1 for SystemdShim {
    fn open(config: &ShimConfig) -> Result<Self, ShimFailure> {
        let config = SystemdConfig::from_shim_config(config).map_err(SystemdError::into_failure)?;
        Ok(SystemdShim::new(config))
    }

    fn register_service(&mut self, exe: &str, args: &[String]) -> Result<(), ShimFailure> {
        SystemdShim::register_service(self, exe, args).map_err(SystemdError::into_failure)
    }

    fn swap_service(&mut self, exe: &str, args: &[String]) -> Result<(), ShimFailure> {
        SystemdShim::swap_service(self, exe, args).map_err(SystemdError::into_failure)
    }

    fn unregister_service(&mut self) -> Result<(), ShimFailure> {
        SystemdShim::unregister_service(self).map_err(SystemdError::into_failure)
    }

    fn register_wake(
        &mut self,
        every: Duration,
        exe: &str,
        args: &[String],
    ) -> Result<(), ShimFailure> {
        SystemdShim::register_wake(self, every, exe, args).map_err(SystemdError::into_failure)
    }

    fn unregister_wake(&mut self) -> Result<(), ShimFailure> {
        SystemdShim::unregister_wake(self).map_err(SystemdError::into_failure)
    }

    fn describe(&self) -> Result<String, ShimFailure> {
        SystemdShim::describe(self).map_err(SystemdError::into_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn shim(dir: &Path) -> SystemdShim {
        SystemdShim::new(SystemdConfig::new(dir))
    }

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    fn exec_start(dir: &Path, name: &str) -> String {
        read(dir, name)
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn service_register_swap_unregister() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("units");
        let s = shim(&dir);
        s.register_service(
            "/opt/upkeep/1.0/upkeep",
            &args(&["wake", "--root", "/srv/up"]),
        )
        .unwrap();
        assert_eq!(
            exec_start(&dir, "upkeep.service"),
            "/opt/upkeep/1.0/upkeep wake --root /srv/up"
        );
        s.swap_service("/opt/up keep/2.0/upkeep", &args(&["wake"]))
            .unwrap();
        assert_eq!(
            exec_start(&dir, "upkeep.service"),
            "\"/opt/up keep/2.0/upkeep\" wake"
        );
        // No wake registered: swapping must not create its service.
        assert!(!dir.join("upkeep-wake.service").exists());
        s.unregister_service().unwrap();
        s.unregister_service().unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn the_daemon_service_is_socket_activated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("units");
        let s = shim(&dir);
        s.register_service(
            "/var/lib/up%keep/versions/1.0/upkeep",
            &args(&["daemon", "--root", "/var/lib/up%keep"]),
        )
        .unwrap();
        let service = read(&dir, "upkeep.service");
        assert!(service.contains("\nType=simple\n"), "{service}");
        assert!(service.contains("\nRequires=upkeep.socket\n"), "{service}");
        assert!(service.contains("\nKillMode=mixed\n"), "{service}");
        let socket = read(&dir, "upkeep.socket");
        assert!(
            socket.contains("\nListenStream=/var/lib/up%%keep/versions/1.0/ipc.sock\n"),
            "{socket}"
        );
        assert_eq!(
            fs::read_link(dir.join("sockets.target.wants/upkeep.socket")).unwrap(),
            Path::new("../upkeep.socket")
        );
        assert!(
            s.describe()
                .unwrap()
                .contains("upkeep.socket: ListenStream=")
        );
        // A swap to the next version moves the socket with it.
        s.swap_service(
            "/var/lib/upkeep/versions/2.0/upkeep",
            &args(&["daemon", "--root", "/var/lib/upkeep"]),
        )
        .unwrap();
        assert!(
            read(&dir, "upkeep.socket")
                .contains("\nListenStream=/var/lib/upkeep/versions/2.0/ipc.sock\n")
        );
        // Registering a oneshot service instead removes the socket.
        s.register_service("/usr/bin/upkeep", &args(&["wake"]))
            .unwrap();
        assert!(!dir.join("upkeep.socket").exists());
        assert!(!dir.join("sockets.target.wants/upkeep.socket").exists());
        assert!(read(&dir, "upkeep.service").contains("\nType=oneshot\n"));
        s.register_service("/opt/u/1/upkeep", &args(&["daemon"]))
            .unwrap();
        s.unregister_service().unwrap();
        assert!(!dir.join("upkeep.socket").exists());
        assert!(!dir.join("upkeep.service").exists());
    }

    #[test]
    fn wake_register_swap_unregister() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let s = shim(dir);
        s.register_wake(
            Duration::from_secs(7200),
            "/opt/upkeep/1.0/upkeep",
            &args(&["wake"]),
        )
        .unwrap();
        assert_eq!(
            exec_start(dir, "upkeep-wake.service"),
            "/opt/upkeep/1.0/upkeep wake"
        );
        let timer = read(dir, "upkeep-wake.timer");
        assert!(timer.contains("\nOnUnitActiveSec=7200s\n"), "{timer}");
        assert!(timer.contains("\nUnit=upkeep-wake.service\n"), "{timer}");
        assert_eq!(
            fs::read_link(dir.join("timers.target.wants/upkeep-wake.timer")).unwrap(),
            Path::new("../upkeep-wake.timer")
        );
        // The timer alone is registered: swap moves the wake service.
        s.swap_service("/opt/upkeep/2.0/upkeep", &args(&["wake", "$x"]))
            .unwrap();
        assert_eq!(
            exec_start(dir, "upkeep-wake.service"),
            "/opt/upkeep/2.0/upkeep wake \"$$x\""
        );
        assert!(!dir.join("upkeep.service").exists());
        s.unregister_wake().unwrap();
        s.unregister_wake().unwrap();
        let left: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(TIMERS_WANTS_DIR)]);
        assert_eq!(fs::read_dir(dir.join(TIMERS_WANTS_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn swap_with_nothing_registered_fails_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        let e = shim(tmp.path())
            .swap_service("/opt/upkeep", &[])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "nothing to swap: neither upkeep.service nor upkeep-wake.service exists in {}",
                tmp.path().display()
            )
        );
    }

    #[test]
    fn bad_executable_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let s = shim(tmp.path());
        assert!(s.register_service("relative/upkeep", &[]).is_err());
        assert!(
            s.register_wake(Duration::from_secs(60), "/a/../b", &[])
                .is_err()
        );
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn describe_lists_files_and_exec_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut config = SystemdConfig::new(dir);
        config.name = "acme".into();
        let s = SystemdShim::new(config);
        assert_eq!(
            s.describe().unwrap(),
            format!("systemd: no units for \"acme\" in {}", dir.display())
        );
        s.register_service("/opt/acme/up", &args(&["wake"]))
            .unwrap();
        s.register_wake(
            Duration::from_secs(600),
            "/opt/acme/up",
            &args(&["wake", "--quiet"]),
        )
        .unwrap();
        assert_eq!(
            s.describe().unwrap(),
            format!(
                "systemd units for \"acme\" in {}:\n\
                 \x20 acme.service: ExecStart=/opt/acme/up wake\n\
                 \x20 acme-wake.timer: OnBootSec=300s, OnUnitActiveSec=600s, enabled\n\
                 \x20 acme-wake.service: ExecStart=/opt/acme/up wake --quiet",
                dir.display()
            )
        );
    }

    /// A stand-in `systemctl` that appends its arguments to a log, and
    /// fails when asked to.
    #[cfg(unix)]
    fn fake_systemctl(dir: &Path, fail_on: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("systemctl.log");
        let script = dir.join("systemctl");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *'{fail_on}'*) echo 'Unit not loaded.' >&2; exit 5;; esac\n",
                log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    #[cfg(unix)]
    #[test]
    fn reload_runs_systemctl_only_when_configured() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("units");
        let (script, log) = fake_systemctl(tmp.path(), "stop");
        let mut config = SystemdConfig::new(&units);
        config.systemctl = script.clone();

        // reload=none: nothing runs.
        let quiet = SystemdShim::new(config.clone());
        quiet
            .register_wake(Duration::from_secs(60), "/u", &[])
            .unwrap();
        quiet.unregister_wake().unwrap();
        assert!(!log.exists());

        config.reload = Reload::User;
        let s = SystemdShim::new(config);
        s.register_service("/u", &[]).unwrap();
        s.register_wake(Duration::from_secs(60), "/u", &[]).unwrap();
        s.swap_service("/v", &[]).unwrap();
        // `stop` fails in the fake: the files go anyway.
        s.unregister_wake().unwrap();
        s.unregister_service().unwrap();
        // Nothing left to remove: no reload.
        s.unregister_service().unwrap();
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "--user daemon-reload\n\
             --user daemon-reload\n\
             --user start upkeep-wake.timer\n\
             --user daemon-reload\n\
             --user stop upkeep-wake.timer\n\
             --user daemon-reload\n\
             --user daemon-reload\n"
        );
        assert_eq!(
            fs::read_dir(&units).unwrap().count(),
            1,
            "only the wants dir"
        );
    }

    #[cfg(unix)]
    #[test]
    fn systemctl_failure_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let (script, _log) = fake_systemctl(tmp.path(), "daemon-reload");
        let mut config = SystemdConfig::new(tmp.path().join("units"));
        config.systemctl = script.clone();
        config.reload = Reload::System;
        let e = SystemdShim::new(config)
            .register_service("/u", &[])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "`{} daemon-reload` failed: exit status: 5: Unit not loaded.",
                script.display()
            )
        );

        let mut config = SystemdConfig::new(tmp.path().join("units"));
        config.systemctl = tmp.path().join("no-such-systemctl");
        config.reload = Reload::System;
        let e = SystemdShim::new(config)
            .register_service("/u", &[])
            .unwrap_err();
        assert!(e.to_string().contains("cannot run:"), "{e}");
    }
}
