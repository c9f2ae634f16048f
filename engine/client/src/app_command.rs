//! Running an app's registered command (Omaha's app commands): only a
//! command the app registered, its parameters put into their placeholders
//! without a shell ([`upkeep_core::app_command`]), run in the app's current
//! version directory, and its exit code reported in an event ping (event
//! type 41). The state lock is not held while the command runs.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use upkeep_core::app_command::AppCommandError;
use upkeep_core::appdir;
use upkeep_core::omaha::{ErrorCategory, Event, EventResult, EventType, random_id};
use upkeep_core::state::PREFS_FILE;

use crate::client::Client;
use crate::error::ClientError;
use crate::events::Recorded;
use crate::observer::Observer;
use crate::recovery::lock_and_recover_held;

/// The environment a command starts with: nothing of the caller's (a
/// system daemon's caller must not steer a command run as root) but a
/// plain `PATH`.
const COMMAND_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `executable` with `arguments` as an app's command runs: in `dir`, with
/// an empty standard input and an environment of only [`COMMAND_PATH`].
pub(crate) fn command_process(
    executable: &std::path::Path,
    arguments: &[String],
    dir: &std::path::Path,
) -> Command {
    let mut cmd = Command::new(executable);
    cmd.args(arguments)
        .current_dir(dir)
        .env_clear()
        .env("PATH", COMMAND_PATH)
        .stdin(Stdio::null());
    cmd
}

/// What running a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    /// The app.
    pub app: String,
    /// The command's name.
    pub name: String,
    /// The program and arguments it ran.
    pub argv: Vec<String>,
    /// Its exit code; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// What it wrote to its standard output.
    pub stdout: String,
    /// What it wrote to its standard error.
    pub stderr: String,
}

impl Client {
    /// Runs the command `name` that `app` registered, with `parameters` for
    /// its `%1`..`%9`, and reports its exit code to the server (event type
    /// 41: success for exit 0, else an error with the exit code as
    /// `errorcode`).
    pub fn run_app_command(
        &self,
        app: &str,
        name: &str,
        parameters: &[String],
        observer: &mut dyn Observer,
    ) -> Result<CommandRun, ClientError> {
        let config = self.config_if_present()?;
        let (lock, prefs) = lock_and_recover_held(&self.root, config, observer)?;
        let id = app.to_ascii_lowercase();
        let Some(record) = prefs.apps.get(&id) else {
            return Err(ClientError::NotRegistered {
                app: app.to_owned(),
                root: self.root.clone(),
            });
        };
        let Some(command) = record.command(name) else {
            return Err(ClientError::UnknownAppCommand {
                app: id.clone(),
                name: name.to_owned(),
                known: record.command_names(),
            });
        };
        let refused = |source: AppCommandError| ClientError::AppCommand {
            app: id.clone(),
            name: name.to_owned(),
            source,
        };
        let arguments = command.arguments_with(parameters).map_err(refused)?;
        let current = record.install_dir.join(appdir::CURRENT);
        let dir: PathBuf = if current.is_dir() {
            current
        } else {
            record.install_dir.clone()
        };
        let executable = command.program_in(&dir);
        drop(lock);

        let output = command_process(&executable, &arguments, &dir)
            .output()
            .map_err(ClientError::io("cannot run", &executable))?;
        let exit_code = output.status.code();

        let (_lock, mut prefs) = lock_and_recover_held(&self.root, config, observer)?;
        let session = random_id().map_err(|e| ClientError::Random(e.to_string()))?;
        let version = prefs
            .apps
            .get(&id)
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let mut event = Event::new(
            EventType::AppCommand,
            if exit_code == Some(0) {
                EventResult::Success
            } else {
                EventResult::Error
            },
        );
        if exit_code != Some(0) {
            event.errorcat = Some(ErrorCategory::Install);
        }
        event.errorcode = Some(i64::from(exit_code.unwrap_or(-1)));
        event.extra.insert("appcommandid".into(), name.to_owned());
        prefs
            .outbox
            .push(Recorded::new(&id, event).into_entry(version, &session));
        prefs.save(&self.root.join(PREFS_FILE))?;
        self.report(self.config(), &session, &mut prefs, &id, observer);
        let mut argv = vec![executable.display().to_string()];
        argv.extend(arguments);
        Ok(CommandRun {
            app: id,
            name: name.to_owned(),
            argv,
            exit_code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
