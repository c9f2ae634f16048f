//! The unit files: names and text.

use std::time::Duration;

use crate::config::SystemdConfig;
use crate::quote::escape_specifiers;

/// The first line of every file the shim writes.
pub const HEADER: &str = "# Written by upkeep's systemd shim; edits are overwritten.\n";

/// The longest delay systemd adds at random to a wake.
pub const MAX_RANDOMIZED_DELAY: Duration = Duration::from_secs(600);
/// The longest wait for the first wake after boot.
pub const MAX_BOOT_DELAY: Duration = Duration::from_secs(300);

/// The names of the units of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitNames {
    /// `<name>.service`: the engine's service.
    pub service: String,
    /// `<name>-wake.service`: what the timer runs.
    pub wake_service: String,
    /// `<name>-wake.timer`: the periodic wake.
    pub timer: String,
    /// `<name>.socket`: the daemon's socket, when the service is the daemon.
    pub socket: String,
}

impl UnitNames {
    /// The names for base name `name`.
    pub fn new(name: &str) -> Self {
        UnitNames {
            service: format!("{name}.service"),
            wake_service: format!("{name}-wake.service"),
            timer: format!("{name}-wake.timer"),
            socket: format!("{name}.socket"),
        }
    }
}

/// The directory `systemctl enable` links the timer into.
pub const TIMERS_WANTS_DIR: &str = "timers.target.wants";
/// The directory `systemctl enable` links the socket into.
pub const SOCKETS_WANTS_DIR: &str = "sockets.target.wants";

/// The first argument that makes a service the long-running daemon.
pub const DAEMON_COMMAND: &str = "daemon";
/// The socket file the daemon serves, beside its executable.
pub const DAEMON_SOCKET_FILE: &str = "ipc.sock";

/// `<name>.service`: a oneshot running `exec_start` (already quoted).
pub fn service_unit(config: &SystemdConfig, exec_start: &str) -> String {
    format!(
        "{HEADER}[Unit]\nDescription={}\n\n[Service]\nType=oneshot\nExecStart={exec_start}\n",
        escape_specifiers(&config.description)
    )
}

/// `<name>.service` as the daemon: started by `<name>.socket` on the first
/// connection, told to stop with SIGTERM to the main process only
/// (`KillMode=mixed`), so it can cancel and finish the operation in flight
/// before the rest of its group is killed.
pub fn daemon_service_unit(config: &SystemdConfig, exec_start: &str) -> String {
    let names = UnitNames::new(&config.name);
    format!(
        "{HEADER}[Unit]\nDescription={}\nRequires={socket}\nAfter={socket}\n\n\
         [Service]\nType=simple\nExecStart={exec_start}\nKillMode=mixed\nTimeoutStopSec=120\n",
        escape_specifiers(&config.description),
        socket = names.socket,
    )
}

/// `<name>.socket`: listens on `listen` for the daemon. Mode 0666: the
/// daemon decides per request who may ask what (`SO_PEERCRED`), and a
/// per-user state root is a private directory.
pub fn socket_unit(config: &SystemdConfig, listen: &str) -> String {
    let names = UnitNames::new(&config.name);
    format!(
        "{HEADER}[Unit]\nDescription={} (IPC socket)\n\n\
         [Socket]\nListenStream={listen}\nSocketMode=0666\nRemoveOnStop=yes\nService={}\n\n\
         [Install]\nWantedBy=sockets.target\n",
        escape_specifiers(&config.description),
        names.service,
    )
}

/// `<name>-wake.service`: the oneshot the timer runs.
pub fn wake_service_unit(config: &SystemdConfig, exec_start: &str) -> String {
    format!(
        "{HEADER}[Unit]\nDescription={} (periodic wake)\n\n[Service]\nType=oneshot\nExecStart={exec_start}\n",
        escape_specifiers(&config.description)
    )
}

/// `<name>-wake.timer`: runs the wake service `every` after it last ran,
/// and soon after boot.
///
/// `OnBootSec=` is the interval or five minutes, whichever is shorter: it
/// also fires at once when the timer is started later than that after boot,
/// which starts the `OnUnitActiveSec=` chain. `RandomizedDelaySec=` is a
/// tenth of the interval, at most ten minutes, so machines do not all wake
/// at once. No `Persistent=`: systemd applies it to `OnCalendar=` timers
/// only; a wake missed while the machine was off happens after the next
/// boot through `OnBootSec=`.
pub fn timer_unit(config: &SystemdConfig, every: Duration) -> String {
    let names = UnitNames::new(&config.name);
    let every = every.as_secs().max(1);
    let boot = every.min(MAX_BOOT_DELAY.as_secs());
    let delay = (every / 10).min(MAX_RANDOMIZED_DELAY.as_secs());
    format!(
        "{HEADER}[Unit]\nDescription={} (periodic wake timer)\n\n\
         [Timer]\nOnBootSec={boot}s\nOnUnitActiveSec={every}s\nRandomizedDelaySec={delay}s\n\
         Unit={}\n\n[Install]\nWantedBy=timers.target\n",
        escape_specifiers(&config.description),
        names.wake_service
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SystemdConfig {
        SystemdConfig::new("/etc/systemd/system")
    }

    #[test]
    fn names() {
        let n = UnitNames::new("acme@x");
        assert_eq!(n.service, "acme@x.service");
        assert_eq!(n.wake_service, "acme@x-wake.service");
        assert_eq!(n.timer, "acme@x-wake.timer");
        assert_eq!(n.socket, "acme@x.socket");
    }

    #[test]
    fn daemon_and_socket_text() {
        assert_eq!(
            daemon_service_unit(&config(), "/opt/upkeep/upkeep daemon"),
            "# Written by upkeep's systemd shim; edits are overwritten.\n\
             [Unit]\n\
             Description=upkeep update engine\n\
             Requires=upkeep.socket\n\
             After=upkeep.socket\n\
             \n\
             [Service]\n\
             Type=simple\n\
             ExecStart=/opt/upkeep/upkeep daemon\n\
             KillMode=mixed\n\
             TimeoutStopSec=120\n"
        );
        assert_eq!(
            socket_unit(&config(), "/var/lib/upkeep/versions/1.0/ipc.sock"),
            "# Written by upkeep's systemd shim; edits are overwritten.\n\
             [Unit]\n\
             Description=upkeep update engine (IPC socket)\n\
             \n\
             [Socket]\n\
             ListenStream=/var/lib/upkeep/versions/1.0/ipc.sock\n\
             SocketMode=0666\n\
             RemoveOnStop=yes\n\
             Service=upkeep.service\n\
             \n\
             [Install]\n\
             WantedBy=sockets.target\n"
        );
    }

    #[test]
    fn service_text() {
        assert_eq!(
            service_unit(&config(), "/opt/upkeep/upkeep wake"),
            "# Written by upkeep's systemd shim; edits are overwritten.\n\
             [Unit]\n\
             Description=upkeep update engine\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart=/opt/upkeep/upkeep wake\n"
        );
    }

    #[test]
    fn wake_service_text() {
        let mut c = config();
        c.description = "Acme 100% updates".into();
        let text = wake_service_unit(&c, "\"/opt/a b/up\" wake");
        assert!(text.contains("\nDescription=Acme 100%% updates (periodic wake)\n"));
        assert!(text.contains("\nType=oneshot\nExecStart=\"/opt/a b/up\" wake\n"));
    }

    #[test]
    fn timer_text() {
        assert_eq!(
            timer_unit(&config(), Duration::from_secs(3600)),
            "# Written by upkeep's systemd shim; edits are overwritten.\n\
             [Unit]\n\
             Description=upkeep update engine (periodic wake timer)\n\
             \n\
             [Timer]\n\
             OnBootSec=300s\n\
             OnUnitActiveSec=3600s\n\
             RandomizedDelaySec=360s\n\
             Unit=upkeep-wake.service\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n"
        );
    }

    #[test]
    fn timer_delays_scale_and_cap() {
        let short = timer_unit(&config(), Duration::from_secs(60));
        assert!(short.contains("OnBootSec=60s\nOnUnitActiveSec=60s\nRandomizedDelaySec=6s\n"));
        let day = timer_unit(&config(), Duration::from_secs(86_400));
        assert!(day.contains("OnBootSec=300s\nOnUnitActiveSec=86400s\nRandomizedDelaySec=600s\n"));
        let sub = timer_unit(&config(), Duration::from_millis(10));
        assert!(sub.contains("OnUnitActiveSec=1s\nRandomizedDelaySec=0s\n"));
    }
}
