//! Embedding upkeep: open a state root, register an app with an installer
//! plugin, update it from an update server, and report through an
//! observer. Walked through in `docs/embedding.md`.
//!
//! ```text
//! embed STATE_ROOT CONFIG SERVER_URL APP_ID INSTALLER_WASM
//! ```

use upkeep_client::{
    AppOutcome, Client, Config, Notice, Observer, Progress, Registration, Selection, Warning,
};

/// Tells a person what the engine does, on stderr.
struct Log;

impl Observer for Log {
    fn notice(&mut self, notice: &Notice) {
        eprintln!("embed: {notice}");
    }
    fn warning(&mut self, warning: &Warning) {
        eprintln!("embed: warning: {warning}");
    }
    fn progress(&mut self, p: &Progress<'_>) {
        if p.received == p.total {
            eprintln!("embed: {} complete ({} bytes)", p.file, p.total);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, config, server, app, installer] = args.as_slice() else {
        eprintln!("usage: embed STATE_ROOT CONFIG SERVER_URL APP_ID INSTALLER_WASM");
        std::process::exit(2);
    };
    let mut config = Config::load(config.as_ref())?;
    config.server = server.trim_end_matches('/').to_owned();
    let client = Client::builder(root).with_config(config).open()?;

    // Register once, at version 0: the first update installs the newest release.
    let known = client
        .status()
        .is_ok_and(|s| s.apps.iter().any(|a| a.app == app.to_ascii_lowercase()));
    if !known {
        let dir = client.root().join("apps").join(app);
        let registration = Registration::new(app, Default::default(), dir, installer);
        client.register(registration, &mut Log)?;
    }

    let report = client.update(Selection::App(app.clone()), &mut Log)?;
    for a in &report.apps {
        match &a.outcome {
            AppOutcome::Updated { from, to, .. } => println!("{}: {from} -> {to}", a.app),
            AppOutcome::UpToDate { version } => println!("{}: up to date at {version}", a.app),
            AppOutcome::Held { version, hold } => println!("{}: stays at {version}: {hold}", a.app),
            AppOutcome::Removed { .. } => println!("{}: no longer installed", a.app),
            AppOutcome::Failed { error, .. } => {
                let (category, code, _) = error.omaha();
                println!(
                    "{}: failed (errorcat {}, errorcode {code}): {error}",
                    a.app,
                    category.code()
                );
            }
        }
    }
    std::process::exit(i32::from(report.failed()));
}
