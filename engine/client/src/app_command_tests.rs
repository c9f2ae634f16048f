//! [`Client::run_app_command`](crate::Client::run_app_command) against the
//! in-memory server of [`crate::tests`]: only registered commands run, with
//! their parameters in place and no shell, and each run is reported.

use std::collections::BTreeMap;

use upkeep_core::omaha::EventType;

use crate::tests::{APP, World};
use crate::{ClientError, Recorder, Registration};

/// Registers `APP` (installed at 1.0) with `commands`.
fn register(w: &World, commands: &[(&str, &str)]) -> Result<(), ClientError> {
    let mut r = Registration::new(APP, "1.0".parse().unwrap(), w.install_dir(), "/p.wasm");
    r.commands = commands
        .iter()
        .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
        .collect::<BTreeMap<_, _>>();
    std::fs::create_dir_all(w.install_dir()).unwrap();
    w.client.register(r, &mut Recorder::default()).map(|_| ())
}

fn run(w: &World, name: &str, parameters: &[&str]) -> Result<crate::CommandRun, ClientError> {
    let parameters: Vec<String> = parameters.iter().map(|p| (*p).to_owned()).collect();
    w.client
        .run_app_command(APP, name, &parameters, &mut Recorder::default())
}

#[test]
fn a_registered_command_runs_with_its_parameters_and_is_reported() {
    let w = World::new();
    register(
        &w,
        &[
            ("echo", "/bin/echo --level=%1 %2"),
            ("fail", "/bin/sh -c \"exit 3\""),
        ],
    )
    .unwrap();
    let done = run(&w, "echo", &["full; rm -rf /", "$(id)"]).unwrap();
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(done.stdout, "--level=full; rm -rf / $(id)\n");
    assert_eq!(done.argv, ["/bin/echo", "--level=full; rm -rf /", "$(id)"]);
    let failed = run(&w, "fail", &[]).unwrap();
    assert_eq!(failed.exit_code, Some(3));
    // Both reached the server as event type 41, the exit code as errorcode.
    let events: Vec<_> = w
        .server
        .events()
        .into_iter()
        .filter(|e| e.1 == EventType::AppCommand.code())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[0].2, events[0].4), (1, 0));
    assert_eq!((events[1].2, events[1].4), (0, 3));
}

#[test]
fn unknown_commands_and_bent_parameters_run_nothing() {
    let w = World::new();
    register(&w, &[("echo", "/bin/echo %1")]).unwrap();
    let before = w.prefs();
    assert!(matches!(
        run(&w, "reboot", &[]),
        Err(ClientError::UnknownAppCommand { known, .. }) if known == ["echo"]
    ));
    for bad in [&["--evil"][..], &["a\nb"], &["%1"], &[], &["a", "b"]] {
        match run(&w, "echo", bad) {
            Err(ClientError::AppCommand { .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(w.prefs(), before);
    assert!(w.server.requests.lock().unwrap().is_empty());
}

#[test]
fn a_command_line_that_could_be_bent_is_refused_at_registration() {
    let w = World::new();
    for (name, line) in [
        ("rel", "bin/tool %1"),
        ("prog", "/opt/%1/tool"),
        ("pct", "/bin/tool 50%"),
        ("a=b", "/bin/true"),
    ] {
        let e = register(&w, &[(name, line)]).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::BadAppCommand { .. } | ClientError::BadAppCommandName { .. }
            ),
            "{line}: {e}"
        );
    }
    assert!(w.prefs().apps.is_empty());
}
