//! The updater's own lifecycle end to end, with the real binary against the
//! real reference server: `upkeep setup` installs a version side by side
//! and activates it; `upkeep wake` updates apps and upkeep itself; the new
//! version qualifies (a real update of the qualification app, then the
//! vendor's qualifier plugin), activates (the `current` link and the
//! systemd units through the real shim library) and the old one uninstalls
//! itself. Also: single-binary self-update with `exec`, scopes, the lock,
//! self-uninstall, and the crash-point sweep that kills the process at
//! every step of every operation and checks what the next run finds
//! (`UPKEEP_SHOW_CRASH_POINTS=1` lists the points of each scenario).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::world::{World, tar_gz, text};
use support::{plugin_path, upkeep, upkeep_bin, workspace_root};
use upkeep_core::state::{Prefs, StateLock};

const ALPHA: &str = "org.example.alpha";
const BETA: &str = "org.example.beta";
const QUAL: &str = "org.example.qualification";
const SELF_APP: &str = "upkeep";
const OLD: &str = "0.1.0";
const NEW: &str = "0.2.0";

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

/// The upkeep binary without debug sections: the same program, a fraction
/// of the bytes to publish, download and copy. Made once per test process.
fn small_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = workspace_root().join("target/lifecycle-test");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("upkeep-{}", std::process::id()));
        let out = Command::new("strip")
            .arg("-o")
            .arg(&path)
            .arg(upkeep_bin())
            .output()
            .expect("strip (binutils) is needed to shrink the test binary");
        assert!(out.status.success(), "strip: {}", text(&out.stderr));
        path
    })
}

/// The bytes published as upkeep 0.2.0: the same program with a trailer
/// (an ELF file runs with bytes appended), so its hash differs.
fn new_release() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut b = std::fs::read(small_binary()).unwrap();
        b.extend_from_slice(b"\nupkeep 0.2.0 release\n");
        b
    })
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| sha256(&b))
}

/// The systemd shim library `scripts/test.sh` builds.
fn shim_library() -> PathBuf {
    let path = workspace_root().join("target/debug/libupkeep_shim_systemd.so");
    assert!(
        path.exists(),
        "{} is missing; run `cargo build -p upkeep-shim-systemd` (scripts/test.sh does)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------
// A machine: a world with upkeep itself set up in it
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    SideBySide,
    SingleBinary,
}

struct Machine {
    w: World,
    units: PathBuf,
    /// Where the single-binary updater lives.
    bin: PathBuf,
    mode: Mode,
}

/// The files of the qualification app's release; the qualifier checks
/// `VERSION` against the installed version and `SHA256SUMS`.
fn qualification_release(version_file: &str) -> Vec<u8> {
    let q = b"qualification payload\n";
    let sums = format!("{}  bin/q\n", sha256(q));
    tar_gz(&[
        ("VERSION", version_file.as_bytes()),
        ("bin/q", q),
        ("SHA256SUMS", sums.as_bytes()),
    ])
}

impl Machine {
    fn new(mode: Mode) -> Machine {
        let mut w = World::new();
        let units = w.path("units");
        let bin = w.path("bin/upkeep");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(small_binary(), &bin).unwrap();
        w.serve();
        let m = Machine {
            w,
            units,
            bin,
            mode,
        };
        m.write_config();
        // The server knows upkeep itself from the start: the running version.
        m.w.publish_bytes(
            SELF_APP,
            OLD,
            "upkeep",
            &std::fs::read(small_binary()).unwrap(),
            &[],
        );
        m
    }

    /// Set up, with alpha 1.0 installed and an existence checker that
    /// looks for `current/bin/alpha`.
    fn with_checked_alpha() -> Machine {
        let m = Machine::new(Mode::SideBySide);
        m.setup();
        m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
        m.w.register_with(
            ALPHA,
            "0",
            &plugin_path("install-archive"),
            &[
                "--existence",
                plugin_path("exists-path").to_str().unwrap(),
                "--marker",
                "current/bin/alpha",
            ],
        );
        expect_ok(&m.wake_now());
        m
    }

    fn write_config(&self) {
        let path = self.config();
        let mut text = std::fs::read_to_string(&path).unwrap();
        let mode = match self.mode {
            Mode::SideBySide => "side-by-side",
            Mode::SingleBinary => "single-binary",
        };
        text.push_str(&format!(
            "check_interval_minutes = 60\n\n[updater]\napp = {SELF_APP:?}\nmode = {mode:?}\nshim = {:?}\n\n\
             [updater.shim_config]\nunit_dir = {:?}\n\n[qualification]\napp = {QUAL:?}\n\
             installer = {:?}\nqualifier = {:?}\n",
            shim_library(),
            self.units,
            plugin_path("install-archive"),
            plugin_path("qualify-selftest"),
        ));
        std::fs::write(&path, text).unwrap();
    }

    fn config(&self) -> PathBuf {
        self.w.etc.join("config.toml")
    }

    fn state(&self) -> &Path {
        &self.w.state
    }

    /// Runs `exe` with a client verb against this machine's state.
    fn run_with(&self, exe: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(exe);
        cmd.env_remove("RUST_LOG")
            .env_remove("UPKEEP_CRASH_AT")
            .env_remove("UPKEEP_CRASH_TRACE")
            .args(args)
            .arg("--root")
            .arg(self.state())
            .arg("--config")
            .arg(self.config());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn run(&self, exe: &Path, args: &[&str]) -> Output {
        self.run_with(exe, args, &[])
    }

    /// The active version's binary (through `current`), or the single binary.
    fn active_binary(&self) -> PathBuf {
        match self.mode {
            Mode::SideBySide => self.state().join("current/upkeep"),
            Mode::SingleBinary => self.bin.clone(),
        }
    }

    fn setup(&self) -> String {
        let out = self.run(&self.bin, &["setup"]);
        expect_ok(&out)
    }

    fn wake_now(&self) -> Output {
        self.run(&self.active_binary(), &["wake", "--now"])
    }

    fn status(&self) -> Value {
        let out = upkeep()
            .args(["status", "--json", "--root"])
            .arg(self.state())
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap();
        serde_json::from_str(&expect_ok(&out)).unwrap()
    }

    fn prefs(&self) -> Prefs {
        Prefs::load(&self.state().join("prefs.json")).expect("prefs parse")
    }

    fn publish_new_upkeep(&self) {
        self.w
            .publish_bytes(SELF_APP, NEW, "upkeep", new_release(), &[]);
    }

    fn publish_qualification(&self, version: &str, version_file: &str) {
        self.w.publish_bytes(
            QUAL,
            version,
            "app.tar.gz",
            &qualification_release(version_file),
            &[],
        );
    }

    fn unit(&self, name: &str) -> String {
        std::fs::read_to_string(self.units.join(name)).unwrap_or_default()
    }

    fn current_of(&self, dir: &Path) -> Option<String> {
        let target = std::fs::read_link(dir.join("current")).ok()?;
        Some(target.file_name()?.to_str()?.to_owned())
    }
}

fn expect_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

// ---------------------------------------------------------------------------
// The lifecycle, step by step
// ---------------------------------------------------------------------------

#[test]
fn a_new_version_installs_side_by_side_qualifies_activates_and_retires_the_old_one() {
    let m = Machine::new(Mode::SideBySide);
    let out = m.setup();
    assert!(out.contains("registered upkeep itself as upkeep"), "{out}");
    assert!(out.contains(&format!("upkeep {OLD} is active")), "{out}");
    let status = m.status();
    assert_eq!(status["active_version"], OLD);
    assert_eq!(status["scope"], "user");
    assert_eq!(status["lock"], "free");
    let service = m.unit("upkeep.service");
    assert!(
        service.contains(&format!("versions/{OLD}/upkeep daemon --root")),
        "{service}"
    );
    let socket = m.unit("upkeep.socket");
    assert!(
        socket.contains(&format!(
            "ListenStream={}/versions/{OLD}/ipc.sock",
            m.state().display()
        )),
        "{socket}"
    );
    // The configuration is not the state root's default: the service names it.
    assert!(
        service.contains(&format!("--config {}", m.config().display())),
        "{service}"
    );
    assert!(m.units.join("upkeep-wake.timer").exists());

    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    m.publish_qualification("1.0", "1.0\n");
    m.publish_new_upkeep();

    let out = m.wake_now();
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains(&format!("{ALPHA}: installed 1.0")), "{all}");
    assert!(
        all.contains(&format!("upkeep: installed {NEW} side by side")),
        "{all}"
    );
    assert!(all.contains(&format!("upkeep {NEW}: qualifying")), "{all}");
    assert!(all.contains("passed qualifier qualify-selftest"), "{all}");
    assert!(
        all.contains(&format!("upkeep {NEW}: activated (was {OLD})")),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "upkeep {OLD}: {NEW} is active; this version uninstalled itself"
        )),
        "{all}"
    );

    let status = m.status();
    assert_eq!(status["active_version"], NEW, "{status:#}");
    let versions: Vec<&str> = status["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [NEW], "{status:#}");
    assert_eq!(m.current_of(m.state()).as_deref(), Some(NEW));
    assert_eq!(
        file_sha256(&m.state().join("current/upkeep")),
        Some(sha256(new_release()))
    );
    let prefs = m.prefs();
    assert_eq!(prefs.active_version.as_ref().unwrap().to_string(), NEW);
    assert_eq!(prefs.apps[SELF_APP].version.to_string(), NEW);
    assert_eq!(
        prefs.apps[SELF_APP]
            .previous_version
            .as_ref()
            .unwrap()
            .to_string(),
        OLD
    );
    let service = m.unit("upkeep.service");
    assert!(
        service.contains(&format!("versions/{NEW}/upkeep daemon --root")),
        "{service}"
    );
    assert!(
        m.unit("upkeep.socket")
            .contains(&format!("versions/{NEW}/ipc.sock")),
        "the socket still listens for the old version"
    );
    assert!(
        m.unit("upkeep-wake.service")
            .contains(&format!("versions/{NEW}/upkeep")),
        "the wake timer's service still runs the old version"
    );
    let qual = m.state().join(format!(
        "versions/{NEW}/qualification/{QUAL}/versions/1.0/VERSION"
    ));
    assert_eq!(std::fs::read_to_string(&qual).unwrap(), "1.0\n");
    // The log tells the story.
    let log = std::fs::read_to_string(m.state().join("upkeep.log")).unwrap();
    for line in [
        format!("activated {OLD} (was none)"),
        format!("activated {NEW} (was {OLD})"),
        format!("{OLD}: {NEW} is active; uninstalled itself"),
    ] {
        assert!(log.contains(&line), "{line:?} not in the log:\n{log}");
    }

    // Only the active version updates apps.
    std::fs::create_dir_all(m.state().join("versions/0.0.9")).unwrap();
    std::fs::copy(small_binary(), m.state().join("versions/0.0.9/upkeep")).unwrap();
    let out = m.run(&m.state().join("versions/0.0.9/upkeep"), &["update"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("upkeep 0.0.9 is not the active version in"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(m.state().join("versions/0.0.9")).unwrap();

    // Within the interval, a wake does not contact the server.
    let out = m.run(&m.active_binary(), &["wake"]);
    assert!(expect_ok(&out).contains("next check in"), "{}", both(&out));
}

#[test]
fn upkeep_updates_itself_by_patch_from_the_binary_setup_installed() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    // Setup seeded the payload cache with the binary it installed.
    let seeded = m.state().join(format!("downloads/{SELF_APP}/{OLD}/upkeep"));
    assert_eq!(file_sha256(&seeded), file_sha256(small_binary()));
    m.publish_qualification("1.0", "1.0\n");
    let dir = m.w.path("payloads/upkeep-new");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("upkeep"), new_release()).unwrap();
    let out = support::world::run_ok(
        upkeep()
            .args(["repo", "add"])
            .arg(&m.w.repo)
            .args(["--app", SELF_APP, "--version", NEW, "--delta-from", OLD])
            .args(["--patch-format", "zstd"])
            .arg(dir.join("upkeep")),
    );
    assert!(
        out.contains(&format!("patch upkeep.from-{OLD}.zpatch")),
        "{out}"
    );

    let out = m.wake_now();
    let all = both(&out);
    expect_ok(&out);
    assert!(
        all.contains(&format!("upkeep: installed {NEW} side by side")),
        "{all}"
    );
    let installed = m.state().join(format!("versions/{NEW}/upkeep"));
    assert_eq!(file_sha256(&installed), Some(sha256(new_release())));
    // The ping says the file came from the patch, and few bytes moved.
    let events = m.w.app_events(SELF_APP);
    let download = events
        .iter()
        .find(|e| e["event_type"] == 14 && e["next_version"] == NEW)
        .expect("the download event");
    let moved: u64 = download["detail"]["downloaded"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let full = new_release().len() as u64;
    assert!(moved * 100 < full, "{moved} bytes moved of {full}");
    assert!(
        download["detail"]["url"]
            .as_str()
            .unwrap()
            .ends_with(".zpatch"),
        "{download}"
    );
    let update = events
        .iter()
        .find(|e| e["event_type"] == 3 && e["next_version"] == NEW)
        .expect("the update event");
    assert_eq!(update["detail"]["diffresult"], "1", "{update}");
    // The new release is what the cache keeps now.
    assert!(!seeded.exists());
    let cached = m.state().join(format!("downloads/{SELF_APP}/{NEW}/upkeep"));
    assert_eq!(file_sha256(&cached), Some(sha256(new_release())));
}

#[test]
fn a_version_that_fails_qualification_stays_unqualified_and_qualifies_on_a_later_wake() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    // The qualification app's release is broken: its VERSION lies.
    m.publish_qualification("1.0", "9.9\n");
    m.publish_new_upkeep();

    let out = m.wake_now();
    let all = both(&out);
    assert!(all.contains("did not qualify"), "{all}");
    assert!(all.contains("VERSION says"), "{all}");
    let status = m.status();
    assert_eq!(status["active_version"], OLD, "{status:#}");
    let new = status["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == NEW)
        .cloned()
        .unwrap_or_else(|| panic!("{NEW} is not installed: {status:#}"));
    assert_eq!(new["state"], "unqualified", "{status:#}");
    assert!(
        new["qualification"]
            .as_str()
            .unwrap()
            .contains("VERSION says"),
        "{new:#}"
    );
    assert_eq!(m.current_of(m.state()).as_deref(), Some(OLD));
    assert!(
        m.unit("upkeep.service")
            .contains(&format!("versions/{OLD}/upkeep")),
        "an unqualified version took the service"
    );

    // The active version's next wake (not due for an update check) starts
    // the candidate again: it retries and fails again.
    let out = m.run(&m.active_binary(), &["wake"]);
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains(&format!("upkeep {NEW}: qualifying")), "{all}");
    let local = Prefs::load(&m.state().join(format!("versions/{NEW}/prefs.json"))).unwrap();
    let q = local.qualification.unwrap();
    assert!(!q.qualified);
    assert_eq!(q.attempts, 2, "{q:?}");
    assert_eq!(m.status()["active_version"], OLD);

    // A fixed qualification app: the next wake qualifies and activates it.
    m.publish_qualification("1.1", "1.1\n");
    let out = m.run(&m.active_binary(), &["wake"]);
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains(&format!("activated (was {OLD})")), "{all}");
    assert_eq!(m.status()["active_version"], NEW);
    assert_eq!(m.current_of(m.state()).as_deref(), Some(NEW));
    assert!(!m.state().join(format!("versions/{OLD}")).exists());
    let local = Prefs::load(&m.state().join(format!("versions/{NEW}/prefs.json"))).unwrap();
    assert_eq!(local.qualification.unwrap().attempts, 3);
}

#[test]
fn a_single_binary_replaces_itself_and_restarts_as_the_new_version() {
    let m = Machine::new(Mode::SingleBinary);
    let out = m.setup();
    assert!(out.contains("runs as a single binary"), "{out}");
    // The service runs the binary where it is; a replacement keeps the path.
    let service = m.unit("upkeep.service");
    assert!(
        service.contains(&format!("{} wake --root", m.bin.display())),
        "{service}"
    );
    assert!(
        !m.units.join("upkeep.socket").exists(),
        "a single binary has no daemon to activate"
    );
    let old_hash = file_sha256(&m.bin).unwrap();
    m.publish_new_upkeep();
    let out = m.run(&m.bin, &["update"]);
    let all = both(&out);
    expect_ok(&out);
    assert!(
        all.contains(&format!("upkeep: updated {OLD} -> {NEW}")),
        "{all}"
    );
    assert!(all.contains(&format!("restarting as {NEW}")), "{all}");
    assert!(
        all.contains(&format!("running {NEW} after replacing itself")),
        "{all}"
    );
    // The restarted process ran the same command and found nothing newer.
    assert!(
        all.contains(&format!("upkeep: up to date at {NEW}")),
        "{all}"
    );
    let new_hash = file_sha256(&m.bin).unwrap();
    assert_ne!(new_hash, old_hash);
    assert_eq!(new_hash, sha256(new_release()));
    let leftovers: Vec<_> = std::fs::read_dir(m.bin.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["upkeep"], "staging files left behind");
    assert_eq!(m.prefs().apps[SELF_APP].version.to_string(), NEW);
}

#[test]
fn user_system_and_explicit_roots_never_touch_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let explicit = tmp.path().join("explicit");
    let register = |extra: &[&str]| {
        let out = upkeep()
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .args([
                "register",
                "--app",
                ALPHA,
                "--version",
                "1.0",
                "--install-dir",
            ])
            .arg(tmp.path().join("alpha"))
            .arg("--installer")
            .arg(plugin_path("install-archive"))
            .args(extra)
            .output()
            .unwrap();
        expect_ok(&out)
    };
    let out = register(&[]);
    let user_root = home.join(".local/share/upkeep");
    assert!(out.contains(&user_root.display().to_string()), "{out}");
    register(&["--root", explicit.to_str().unwrap()]);
    for root in [&user_root, &explicit] {
        let prefs = Prefs::load(&root.join("prefs.json")).unwrap();
        assert_eq!(prefs.apps.len(), 1, "{}", root.display());
    }
    let status = |extra: &[&str]| {
        upkeep()
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .args(["status", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let user: Value = serde_json::from_str(&expect_ok(&status(&[]))).unwrap();
    assert_eq!(user["scope"], "user");
    assert_eq!(user["root"], user_root.display().to_string());
    // The system scope is /var/lib/upkeep; looking at it creates nothing.
    let system_existed = Path::new("/var/lib/upkeep").exists();
    let out = status(&["--system"]);
    if system_existed {
        let system: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
        assert_eq!(system["scope"], "system");
    } else {
        assert!(
            text(&out.stderr).contains("nothing is installed in /var/lib/upkeep"),
            "{}",
            text(&out.stderr)
        );
        assert!(!Path::new("/var/lib/upkeep").exists());
    }
    let out = status(&["--system", "--root", explicit.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn corrupt_prefs_are_reported_and_left_as_they_are() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    let file = m.state().join("prefs.json");
    let good = std::fs::read(&file).unwrap();
    let damage = &b"{\"format\": 1, \"apps\": ["[..];
    std::fs::write(&file, damage).unwrap();
    for verb in [
        &["wake", "--now"][..],
        &["update"],
        &["uninstall"],
        &["setup"],
    ] {
        let out = m.run(&m.active_binary(), verb);
        assert_eq!(out.status.code(), Some(1), "{verb:?}: {}", both(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains("is corrupt"),
            "{verb:?}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            damage,
            "{verb:?} replaced the file"
        );
    }
    std::fs::write(&file, good).unwrap();
    // A version's unreadable local prefs show in the status.
    let local = m.state().join(format!("versions/{OLD}/prefs.json"));
    std::fs::write(&local, "not json").unwrap();
    let status = m.status();
    assert!(
        status["versions"][0]["qualification"]
            .as_str()
            .unwrap()
            .contains("is corrupt"),
        "{status:#}"
    );
    expect_ok(&m.run(&m.active_binary(), &["wake", "--now"]));
}

#[test]
fn a_held_lock_names_its_holder_and_changes_nothing() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    let before = std::fs::read(m.state().join("prefs.json")).unwrap();
    let held = StateLock::acquire(m.state(), Duration::from_secs(1)).unwrap();
    let started = Instant::now();
    let out = m.run(&m.active_binary(), &["wake", "--now"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("is held by process {}", std::process::id())),
        "{stderr}"
    );
    assert!(started.elapsed() >= Duration::from_secs(9), "did not wait");
    assert_eq!(std::fs::read(m.state().join("prefs.json")).unwrap(), before);
    drop(held);
    let status = m.status();
    assert_eq!(status["lock"], "free");
}

#[test]
fn when_the_last_app_is_gone_upkeep_uninstalls_itself_leaving_only_its_log() {
    let m = Machine::with_checked_alpha();
    let install_dir = m.w.install_dir(ALPHA);
    assert!(install_dir.join("current/bin/alpha").exists());
    // Someone removes the app's files behind the engine's back. The next
    // wake notices though no update check is due.
    std::fs::remove_file(install_dir.join("versions/1.0/bin/alpha")).unwrap();
    let out = m.run(&m.active_binary(), &["wake"]);
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains("no longer installed"), "{all}");
    assert!(
        all.contains("the last app is gone: uninstalling upkeep"),
        "{all}"
    );
    let left: Vec<String> = std::fs::read_dir(m.state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["upkeep.log"], "the state root still holds more");
    assert!(!m.units.join("upkeep.service").exists());
    assert!(!m.units.join("upkeep-wake.timer").exists());
    let log = std::fs::read_to_string(m.state().join("upkeep.log")).unwrap();
    assert!(log.contains("uninstalled; only this log is left"), "{log}");
}

#[test]
fn uninstall_on_demand_removes_upkeep_but_not_the_apps() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    expect_ok(&m.wake_now());
    let out = m.run(&m.active_binary(), &["uninstall"]);
    assert!(
        expect_ok(&out).contains("only upkeep.log is left"),
        "{}",
        both(&out)
    );
    let left: Vec<String> = std::fs::read_dir(m.state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["upkeep.log"]);
    assert_eq!(
        std::fs::read_to_string(m.w.install_dir(ALPHA).join("current/bin/alpha")).unwrap(),
        "alpha 1.0\n"
    );
    let again = m.run(&m.bin, &["uninstall"]);
    assert!(
        text(&again.stderr).contains("upkeep is not installed in"),
        "{}",
        text(&again.stderr)
    );
}

// ---------------------------------------------------------------------------
// The daemon and its IPC socket
// ---------------------------------------------------------------------------

/// A running `upkeep daemon`, killed when dropped.
struct DaemonGuard {
    child: std::process::Child,
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DaemonGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the daemon to exit by itself.
    fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Machine {
    /// Starts `versions/<version>/upkeep daemon`; returns once it answers
    /// a ping on `<root>/versions/<version>/ipc.sock`.
    fn start_daemon(&self, version: &str) -> DaemonGuard {
        let exe = self.state().join(format!("versions/{version}/upkeep"));
        let log = self.w.path(&format!("daemon-{version}.log"));
        let child = Command::new(&exe)
            .env_remove("RUST_LOG")
            .env_remove("UPKEEP_CRASH_AT")
            .env_remove("UPKEEP_CRASH_TRACE")
            .arg("daemon")
            .arg("--root")
            .arg(self.state())
            .arg("--config")
            .arg(self.config())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut guard = DaemonGuard { child };
        let socket = self.state().join(format!("versions/{version}/ipc.sock"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(answer) = exchange(&socket, b"{\"op\":\"ping\"}\n")
                && answer["ok"] == true
            {
                assert_eq!(answer["version"], version, "{answer}");
                assert_eq!(answer["pid"], guard.pid(), "{answer}");
                return guard;
            }
            if let Some(status) = guard.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the daemon never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ipc_link(&self) -> Option<String> {
        let target = std::fs::read_link(self.state().join("ipc.sock")).ok()?;
        Some(target.to_str()?.to_owned())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state().join("upkeep.log")).unwrap_or_default()
    }
}

/// One raw exchange with a daemon: writes `request`, reads the answer line.
fn exchange(socket: &Path, request: &[u8]) -> std::io::Result<Value> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(request)?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

#[test]
fn wake_goes_through_the_running_daemon_and_ends_with_its_exit_status() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    // Activation made the stable endpoint, daemon or not.
    assert_eq!(m.ipc_link().as_deref(), Some("versions/0.1.0/ipc.sock"));
    let status = m.status();
    assert_eq!(
        status["ipc"]["link"], "versions/0.1.0/ipc.sock",
        "{status:#}"
    );
    assert_eq!(status["ipc"]["daemon"], Value::Null, "{status:#}");
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");

    let daemon = m.start_daemon(OLD);
    let pid = daemon.pid();
    let status = m.status();
    assert_eq!(status["ipc"]["daemon"]["version"], OLD, "{status:#}");
    assert_eq!(status["ipc"]["daemon"]["pid"], pid, "{status:#}");

    let out = m.wake_now();
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains(&format!("{ALPHA}: installed 1.0")), "{all}");
    let served = format!("wake served over IPC by {OLD} (pid {pid}): exit 0");
    assert!(m.log().contains(&served), "{served:?} not in:\n{}", m.log());
    assert_eq!(m.w.version(ALPHA), "1.0");

    // The exit status and stderr of the daemon's wake are the client's.
    let prefs = m.state().join("prefs.json");
    let good = std::fs::read(&prefs).unwrap();
    std::fs::write(&prefs, b"{\"format\": 1, \"apps\": [").unwrap();
    let out = m.wake_now();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(text(&out.stderr).contains("is corrupt"), "{}", both(&out));
    let failed = format!("wake served over IPC by {OLD} (pid {pid}): exit 1");
    assert!(m.log().contains(&failed), "{}", m.log());
    std::fs::write(&prefs, good).unwrap();

    // --in-process leaves the daemon out.
    let before = m.log().matches("served over IPC").count();
    expect_ok(&m.run(&m.active_binary(), &["wake", "--now", "--in-process"]));
    assert_eq!(m.log().matches("served over IPC").count(), before);
    // Unreadable prefs did not stop the daemon.
    let answer = exchange(&m.state().join("ipc.sock"), b"{\"op\":\"ping\"}\n").unwrap();
    assert_eq!(answer["pid"], pid, "{answer}");
}

#[test]
fn after_a_self_update_the_link_names_the_new_socket_and_the_old_daemon_exits() {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    m.publish_qualification("1.0", "1.0\n");
    m.publish_new_upkeep();
    let mut old = m.start_daemon(OLD);
    let old_pid = old.pid();

    let out = m.wake_now();
    let all = both(&out);
    expect_ok(&out);
    assert!(
        all.contains(&format!("upkeep {NEW}: activated (was {OLD})")),
        "{all}"
    );
    assert!(
        m.log()
            .contains(&format!("wake served over IPC by {OLD} (pid {old_pid})")),
        "{}",
        m.log()
    );
    assert_eq!(m.ipc_link().as_deref(), Some("versions/0.2.0/ipc.sock"));
    let Some(status) = old.exited_within(Duration::from_secs(20)) else {
        panic!(
            "the old daemon is still running; upkeep.log:\n{}\ndaemon:\n{}",
            m.log(),
            std::fs::read_to_string(m.w.path(&format!("daemon-{OLD}.log"))).unwrap_or_default()
        );
    };
    assert!(status.success(), "{status}");
    assert!(
        m.log()
            .contains(&format!("daemon {OLD} (pid {old_pid}) exits:")),
        "{}",
        m.log()
    );

    // The new version's daemon serves the same endpoint.
    let new = m.start_daemon(NEW);
    expect_ok(&m.wake_now());
    assert!(
        m.log().contains(&format!(
            "wake served over IPC by {NEW} (pid {}): exit 0",
            new.pid()
        )),
        "{}",
        m.log()
    );
    assert_eq!(m.status()["ipc"]["daemon"]["version"], NEW);
}

#[test]
fn a_hostile_client_cannot_wedge_the_daemon() {
    use std::io::Write;
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    // Only an installed, active version serves.
    let out = m.run(support::upkeep_bin(), &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("runs only from a version installed"),
        "{}",
        text(&out.stderr)
    );
    let mut daemon = m.start_daemon(OLD);
    let socket = m.state().join("ipc.sock");
    let out = m.run(&m.active_binary(), &["daemon"]);
    assert!(
        text(&out.stderr).contains("a daemon already listens"),
        "{}",
        both(&out)
    );

    for garbage in [
        &b"hello\n"[..],
        b"{\"op\":\"reboot\"}\n",
        b"{\"op\":\"wake\",\"now\":\"yes\"}\n",
        b"\xff\xfe\n",
    ] {
        let answer = exchange(&socket, garbage).unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(answer["error"].as_str().is_some(), "{answer}");
    }
    // An over-long line: an error, or the connection is closed.
    let long = vec![b'x'; 200 * 1024];
    if let Ok(answer) = exchange(&socket, &long) {
        assert_eq!(answer["ok"], false, "{answer}");
    }
    // A client that connects and says nothing is dropped after a while.
    let mut silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    silent.write_all(b"{\"op\":").unwrap();
    let started = Instant::now();
    let answer = exchange(&socket, b"{\"op\":\"ping\"}\n").unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(silent);

    // Killed, it leaves a stale socket; the next daemon replaces it.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(m.state().join("versions/0.1.0/ipc.sock").exists());
    let out = m.wake_now();
    expect_ok(&out);
    assert!(!m.log().contains("served over IPC"), "{}", m.log());
    let again = m.start_daemon(OLD);
    let answer = exchange(&socket, b"{\"op\":\"ping\"}\n").unwrap();
    assert_eq!(answer["pid"], again.pid(), "{answer}");
}

// ---------------------------------------------------------------------------
// Crash points
// ---------------------------------------------------------------------------

/// Copies a directory tree; big binaries are hard-linked (the engine only
/// ever replaces them by rename, never writes them in place).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        let ty = e.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &target).unwrap();
        } else if ty.is_dir() {
            copy_tree(&e.path(), &target);
        } else if e.file_name() == "upkeep" {
            std::fs::hard_link(e.path(), &target).unwrap();
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn remove(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", dir.display()),
    }
}

/// Runs an operation with extra environment variables.
type RunFn = Box<dyn Fn(&Machine, &[(&str, String)]) -> Output + Send>;
/// Checks a machine.
type CheckFn = Box<dyn Fn(&Machine) + Send>;
/// Builds a scenario.
type Builder = fn() -> Scenario;

/// One operation to crash: the machine in its starting state, the command,
/// and what must hold after a crash and after the next runs.
struct Scenario {
    name: &'static str,
    m: Machine,
    /// The directories the operation may change, saved as the template.
    dirs: Vec<PathBuf>,
    /// Runs the operation (crash variables in `env`).
    run: RunFn,
    /// What must hold right after a crash (before any recovery).
    after_crash: CheckFn,
    /// Runs the operation again until done; then checks the end state.
    finish: CheckFn,
    /// The event the operation reports, which every crash must leave
    /// delivered once the next runs are done.
    reported: Option<Reported>,
}

/// An event (type, from, to) of an app, as the server stores it.
#[derive(Clone, Copy)]
struct Reported {
    app: &'static str,
    event_type: i64,
    from: &'static str,
    /// `None`: no `nextversion` (an uninstall).
    to: Option<&'static str>,
}

impl Reported {
    /// How many of it the server's event store holds.
    fn stored(&self, m: &Machine) -> usize {
        m.w.app_events(self.app)
            .iter()
            .filter(|e| {
                e["event_type"] == self.event_type
                    && e["event_result"] == 1
                    && e["previous_version"] == self.from
                    && self
                        .to
                        .map_or(e["next_version"].is_null(), |to| e["next_version"] == to)
            })
            .count()
    }
}

impl Scenario {
    fn template(&self) -> PathBuf {
        self.m.w.path("template")
    }

    fn save_template(&self) {
        for (i, d) in self.dirs.iter().enumerate() {
            let t = self.template().join(i.to_string());
            remove(&t);
            if d.exists() {
                copy_tree(d, &t);
            }
        }
    }

    fn restore(&self) {
        for (i, d) in self.dirs.iter().enumerate() {
            remove(d);
            let t = self.template().join(i.to_string());
            if t.exists() {
                copy_tree(&t, d);
            }
        }
    }

    /// Every crash point the operation passes, in order.
    fn trace(&self) -> Vec<String> {
        let trace = self.m.w.path(&format!("trace-{}", self.name));
        let _ = std::fs::remove_file(&trace);
        let out = (self.run)(
            &self.m,
            &[("UPKEEP_CRASH_TRACE", trace.display().to_string())],
        );
        assert!(
            out.status.success(),
            "{}: the uninterrupted run failed:\n{}",
            self.name,
            both(&out)
        );
        (self.finish)(&self.m);
        let points: Vec<String> = std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let unique: BTreeSet<&String> = points.iter().collect();
        assert_eq!(unique.len(), points.len(), "{}: a point repeats", self.name);
        points
    }

    /// Crashes at every point; returns how many were covered.
    fn sweep(&self) -> usize {
        self.save_template();
        let points = self.trace();
        assert!(!points.is_empty(), "{}: no crash point reached", self.name);
        if std::env::var_os("UPKEEP_SHOW_CRASH_POINTS").is_some() {
            let list = format!("{}: {}\n", self.name, points.join(" "));
            std::io::Write::write_all(&mut std::io::stderr(), list.as_bytes()).unwrap();
        }
        for point in &points {
            self.restore();
            let stored = self.reported.map(|r| r.stored(&self.m));
            let out = (self.run)(&self.m, &[("UPKEEP_CRASH_AT", point.clone())]);
            let all = both(&out);
            assert!(
                all.contains(&format!("crash point {point} reached: aborting")),
                "{}: the run did not crash at {point}:\n{all}",
                self.name
            );
            self.check_consistent(point);
            (self.after_crash)(&self.m);
            (self.finish)(&self.m);
            if let (Some(reported), Some(before)) = (self.reported, stored) {
                self.check_delivered(point, reported, before);
            }
        }
        self.restore();
        points.len()
    }

    /// The event the crashed run was to report reached the server (in that
    /// run, the runs of `finish`, or the next update check, which carries
    /// what is still in the outbox), and nothing is left in the outbox.
    fn check_delivered(&self, point: &str, reported: Reported, before: usize) {
        if !self.m.prefs().outbox.entries.is_empty() {
            let out = self.m.run(support::upkeep_bin(), &["update"]);
            assert!(
                out.status.success(),
                "{}: after a crash at {point}, the next update failed:\n{}",
                self.name,
                both(&out)
            );
        }
        let outbox = self.m.prefs().outbox;
        assert!(
            outbox.entries.is_empty(),
            "{}: after a crash at {point}, events are still waiting: {outbox:?}",
            self.name
        );
        assert!(
            reported.stored(&self.m) > before,
            "{}: after a crash at {point}, the server never got {} {} -> {:?}",
            self.name,
            reported.app,
            reported.from,
            reported.to
        );
    }

    /// Prefs parse and the lock is free.
    fn check_consistent(&self, point: &str) {
        let state = self.m.state();
        let prefs = state.join("prefs.json");
        if prefs.exists()
            && let Err(e) = Prefs::load(&prefs)
        {
            panic!(
                "{}: after a crash at {point}, prefs do not parse: {e}",
                self.name
            );
        }
        if state.join("prefs.lock").exists() {
            StateLock::acquire(state, Duration::ZERO).unwrap_or_else(|e| {
                panic!(
                    "{}: after a crash at {point}, the lock is held: {e}",
                    self.name
                )
            });
        }
    }
}

/// The app's `current` names a complete release: `bin/alpha` says the
/// version the link names.
fn assert_app_whole(m: &Machine, allowed: &[&str]) -> String {
    let dir = m.w.install_dir(ALPHA);
    let v = m.current_of(&dir).expect("alpha has a current link");
    assert!(
        allowed.contains(&v.as_str()),
        "alpha at {v}, expected one of {allowed:?}"
    );
    let content = std::fs::read_to_string(dir.join("current/bin/alpha")).unwrap();
    assert_eq!(content, format!("alpha {v}\n"), "alpha {v} is not whole");
    v
}

/// The updater's `current` names a complete version whose binary is the
/// release of that version.
fn assert_updater_whole(m: &Machine) -> String {
    let v = m.current_of(m.state()).expect("upkeep has a current link");
    let hash = file_sha256(&m.state().join("current/upkeep"));
    let want = match v.as_str() {
        OLD => file_sha256(small_binary()),
        NEW => Some(sha256(new_release())),
        other => panic!("upkeep current at {other}"),
    };
    assert_eq!(hash, want, "upkeep {v} is not whole");
    v
}

/// Runs `attempt` until `done` holds (at most three runs).
fn until_done(what: &str, attempt: impl Fn() -> Output, done: impl Fn() -> bool) {
    let mut outputs = String::new();
    for _ in 0..3 {
        if done() {
            return;
        }
        let out = attempt();
        outputs.push_str(&both(&out));
    }
    assert!(done(), "{what} did not complete in three runs:\n{outputs}");
}

fn app_update_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    expect_ok(&m.w.update(&[]));
    m.w.publish(ALPHA, "2.0", &[("bin/alpha", "alpha 2.0\n")]);
    let dirs = vec![m.state().to_path_buf(), m.w.installs.clone()];
    Scenario {
        name: "app update",
        m,
        dirs,
        run: Box::new(|m, env| m.run_with(support::upkeep_bin(), &["update"], env)),
        after_crash: Box::new(|m| {
            assert_app_whole(m, &["1.0", "2.0"]);
        }),
        finish: Box::new(|m| {
            until_done(
                "app update",
                || m.run(support::upkeep_bin(), &["update"]),
                || {
                    let p = m.prefs();
                    p.pending.is_none() && p.apps[ALPHA].version.to_string() == "2.0"
                },
            );
            assert_eq!(assert_app_whole(m, &["2.0"]), "2.0");
            let p = m.prefs();
            assert_eq!(
                p.apps[ALPHA]
                    .previous_version
                    .as_ref()
                    .map(ToString::to_string),
                Some("1.0".to_owned())
            );
        }),
        reported: Some(Reported {
            app: ALPHA,
            event_type: 3,
            from: "1.0",
            to: Some("2.0"),
        }),
    }
}

/// An update of alpha from 1.0 to 2.0 gated by the health check command
/// `check` (`/bin/true` passes, `/bin/false` fails). A crash before the
/// check passed leaves it owed: the next run switches back. Either way
/// the app ends whole at 1.0 (2.0 rejected) or, only when the check
/// passes, at 2.0.
fn health_scenario(name: &'static str, check: &'static str) -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let command = format!("healthy={check}");
    m.w.register_with(
        ALPHA,
        "0",
        &plugin_path("install-archive"),
        &["--command", &command, "--health-check-command", "healthy"],
    );
    expect_ok(&m.w.update(&[]));
    m.w.publish(ALPHA, "2.0", &[("bin/alpha", "alpha 2.0\n")]);
    let dirs = vec![m.state().to_path_buf(), m.w.installs.clone()];
    let passes = check == "/bin/true";
    // A failing check makes `update` exit 1 once it has switched back:
    // that is the expected end of the uninterrupted run.
    let update = move |m: &Machine, env: &[(&str, String)]| {
        let mut out = m.run_with(support::upkeep_bin(), &["update"], env);
        if !passes && out.status.code() == Some(1) && both(&out).contains("failed its health check")
        {
            use std::os::unix::process::ExitStatusExt;
            out.status = std::process::ExitStatus::from_raw(0);
        }
        out
    };
    let settled = move |m: &Machine| {
        let p = m.prefs();
        let a = &p.apps[ALPHA];
        let rejected = a.rejected.iter().any(|r| r.version.to_string() == "2.0");
        p.pending.is_none()
            && a.health_pending.is_none()
            && match a.version.to_string().as_str() {
                "2.0" => passes,
                "1.0" => rejected,
                _ => false,
            }
    };
    Scenario {
        name,
        m,
        dirs,
        run: Box::new(update),
        after_crash: Box::new(|m| {
            assert_app_whole(m, &["1.0", "2.0"]);
        }),
        finish: Box::new(move |m| {
            until_done(name, || update(m, &[]), || settled(m));
            let v = m.prefs().apps[ALPHA].version.to_string();
            assert_eq!(assert_app_whole(m, &[v.as_str()]), v);
        }),
        reported: Some(Reported {
            app: ALPHA,
            event_type: 3,
            from: "1.0",
            to: Some("2.0"),
        }),
    }
}

fn rollback_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    expect_ok(&m.w.update(&[]));
    m.w.publish(ALPHA, "2.0", &[("bin/alpha", "alpha 2.0\n")]);
    expect_ok(&m.w.update(&[]));
    let dirs = vec![m.state().to_path_buf(), m.w.installs.clone()];
    let rollback = |m: &Machine, env: &[(&str, String)]| {
        m.run_with(support::upkeep_bin(), &["rollback", "--app", ALPHA], env)
    };
    Scenario {
        name: "rollback",
        m,
        dirs,
        run: Box::new(rollback),
        after_crash: Box::new(|m| {
            // While the link still names 2.0, the version to go back to
            // must still be there.
            if assert_app_whole(m, &["1.0", "2.0"]) == "2.0" {
                let kept = m.w.install_dir(ALPHA).join("versions/1.0/bin/alpha");
                assert!(kept.exists(), "the kept version 1.0 is gone");
            }
        }),
        finish: Box::new(move |m| {
            until_done(
                "rollback",
                || rollback(m, &[]),
                || {
                    let p = m.prefs();
                    p.pending.is_none() && p.apps[ALPHA].version.to_string() == "1.0"
                },
            );
            assert_eq!(assert_app_whole(m, &["1.0"]), "1.0");
        }),
        reported: Some(Reported {
            app: ALPHA,
            event_type: 3,
            from: "2.0",
            to: Some("1.0"),
        }),
    }
}

fn app_remove_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.publish(BETA, "1.0", &[("bin/beta", "beta 1.0\n")]);
    m.w.register(ALPHA, "0");
    // Beta stays registered, so the next `update` has an app to check and
    // its request carries what waits in the outbox.
    m.w.register(BETA, "0");
    expect_ok(&m.w.update(&[]));
    let dirs = vec![m.state().to_path_buf(), m.w.installs.clone()];
    let remove = |m: &Machine, env: &[(&str, String)]| {
        m.run_with(support::upkeep_bin(), &["remove", "--app", ALPHA], env)
    };
    Scenario {
        name: "app remove",
        m,
        dirs,
        run: Box::new(remove),
        after_crash: Box::new(|m| {
            // Forgotten only in the write that records its event.
            let p = m.prefs();
            if !p.apps.contains_key(ALPHA) {
                let recorded = p.outbox.entries.iter().any(|e| {
                    e.app == ALPHA && e.event.eventtype == upkeep_core::omaha::EventType::Uninstall
                });
                let stored = m.w.app_events(ALPHA).iter().any(|e| e["event_type"] == 4);
                assert!(recorded || stored, "alpha went without its event");
            }
        }),
        reported: Some(Reported {
            app: ALPHA,
            event_type: 4,
            from: "1.0",
            to: None,
        }),
        finish: Box::new(move |m| {
            until_done(
                "app remove",
                || remove(m, &[]),
                || !m.prefs().apps.contains_key(ALPHA),
            );
            // A crash between the write that forgets alpha and the removal
            // of its directories leaves the files (never a registration
            // pointing at nothing); otherwise they are gone.
            assert_eq!(
                m.prefs().apps[BETA].version.to_string(),
                "1.0",
                "beta is untouched"
            );
        }),
    }
}

fn self_update_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    expect_ok(&m.wake_now());
    m.publish_qualification("1.0", "1.0\n");
    m.publish_new_upkeep();
    let dirs = vec![m.state().to_path_buf(), m.units.clone()];
    Scenario {
        name: "self-update side by side",
        m,
        dirs,
        run: Box::new(|m, env| m.run_with(&m.active_binary(), &["wake", "--now"], env)),
        after_crash: Box::new(|m| {
            let v = assert_updater_whole(m);
            let p = m.prefs();
            // Active is what current names, unless an activation is in
            // flight (the bit is set) and the next process finishes it.
            if p.swapping.is_none() {
                assert_eq!(p.active_version.as_ref().map(ToString::to_string), Some(v));
            }
        }),
        reported: None,
        finish: Box::new(|m| {
            until_done(
                "self-update",
                || m.wake_now(),
                || {
                    let p = m.prefs();
                    p.active_version
                        .as_ref()
                        .map(ToString::to_string)
                        .as_deref()
                        == Some(NEW)
                        && p.swapping.is_none()
                        && !m.state().join(format!("versions/{OLD}")).exists()
                },
            );
            assert_eq!(assert_updater_whole(m), NEW);
            assert_eq!(m.prefs().apps[SELF_APP].version.to_string(), NEW);
            assert_eq!(m.ipc_link().as_deref(), Some("versions/0.2.0/ipc.sock"));
            assert!(
                m.unit("upkeep.service")
                    .contains(&format!("versions/{NEW}/upkeep")),
                "the service was not swapped"
            );
            assert_app_whole(m, &["1.0"]);
        }),
    }
}

fn single_binary_scenario() -> Scenario {
    let m = Machine::new(Mode::SingleBinary);
    m.setup();
    m.publish_new_upkeep();
    let dirs = vec![
        m.state().to_path_buf(),
        m.bin.parent().unwrap().to_path_buf(),
    ];
    Scenario {
        name: "single-binary self-update",
        m,
        dirs,
        run: Box::new(|m, env| m.run_with(&m.bin, &["update"], env)),
        after_crash: Box::new(|m| {
            let hash = file_sha256(&m.bin);
            assert!(
                hash == file_sha256(small_binary()) || hash == Some(sha256(new_release())),
                "the binary is neither the old nor the new one"
            );
        }),
        reported: None,
        finish: Box::new(|m| {
            until_done(
                "single-binary self-update",
                || m.run(&m.bin, &["update"]),
                || {
                    let p = m.prefs();
                    p.pending.is_none() && p.apps[SELF_APP].version.to_string() == NEW
                },
            );
            assert_eq!(file_sha256(&m.bin), Some(sha256(new_release())));
            let names: Vec<_> = std::fs::read_dir(m.bin.parent().unwrap())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["upkeep"], "staging files left behind");
        }),
    }
}

fn setup_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    let dirs = vec![m.state().to_path_buf(), m.units.clone()];
    Scenario {
        name: "setup",
        m,
        dirs,
        run: Box::new(|m, env| m.run_with(&m.bin, &["setup"], env)),
        after_crash: Box::new(|m| {
            if m.state().join("current").exists() {
                assert_updater_whole(m);
            }
        }),
        reported: None,
        finish: Box::new(|m| {
            until_done(
                "setup",
                || m.run(&m.bin, &["setup"]),
                || {
                    m.state().join("prefs.json").exists()
                        && m.prefs()
                            .active_version
                            .as_ref()
                            .map(ToString::to_string)
                            .as_deref()
                            == Some(OLD)
                        && m.prefs().swapping.is_none()
                },
            );
            assert_eq!(assert_updater_whole(m), OLD);
            assert_eq!(m.ipc_link().as_deref(), Some("versions/0.1.0/ipc.sock"));
            assert!(
                m.unit("upkeep.service")
                    .contains(&format!("versions/{OLD}/upkeep"))
            );
        }),
    }
}

fn uninstall_scenario() -> Scenario {
    let m = Machine::new(Mode::SideBySide);
    m.setup();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    m.w.register(ALPHA, "0");
    expect_ok(&m.wake_now());
    let dirs = vec![m.state().to_path_buf(), m.units.clone()];
    Scenario {
        name: "uninstall",
        m,
        dirs,
        run: Box::new(|m, env| m.run_with(support::upkeep_bin(), &["uninstall"], env)),
        after_crash: Box::new(|m| {
            if m.state().join("current").exists() {
                assert_updater_whole(m);
            }
            assert_app_whole(m, &["1.0"]);
        }),
        reported: None,
        finish: Box::new(|m| {
            until_done(
                "uninstall",
                || m.run(support::upkeep_bin(), &["uninstall"]),
                || only_the_log_is_left(m),
            );
            assert!(!m.units.join("upkeep.service").exists());
            assert_app_whole(m, &["1.0"]);
        }),
    }
}

/// Only `upkeep.log` is left in the state root.
fn only_the_log_is_left(m: &Machine) -> bool {
    std::fs::read_dir(m.state())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        == ["upkeep.log"]
}

fn self_uninstall_scenario() -> Scenario {
    let m = Machine::with_checked_alpha();
    std::fs::remove_file(m.w.install_dir(ALPHA).join("versions/1.0/bin/alpha")).unwrap();
    let dirs = vec![m.state().to_path_buf(), m.units.clone()];
    let wake = |m: &Machine, env: &[(&str, String)]| {
        let exe = m.state().join("current/upkeep");
        // Once the versions are gone, the uninstall is finished by any upkeep.
        let exe = if exe.exists() {
            exe
        } else {
            support::upkeep_bin().to_path_buf()
        };
        m.run_with(&exe, &["wake"], env)
    };
    Scenario {
        name: "self-uninstall",
        m,
        dirs,
        run: Box::new(wake),
        after_crash: Box::new(|m| {
            if m.state().join("current").exists() {
                assert_updater_whole(m);
            }
        }),
        reported: None,
        finish: Box::new(move |m| {
            until_done(
                "self-uninstall",
                || wake(m, &[]),
                || only_the_log_is_left(m),
            );
            assert!(!m.units.join("upkeep.service").exists());
        }),
    }
}

#[test]
fn every_crash_point_leaves_old_or_new_and_the_next_run_finishes() {
    assert!(
        upkeep_core::crash::enabled(),
        "crash points need a debug build of upkeep"
    );
    let builders: Vec<(&str, Builder)> = vec![
        ("app update", app_update_scenario),
        ("rollback", rollback_scenario),
        ("health check passes", || {
            health_scenario("health check passes", "/bin/true")
        }),
        ("health check fails", || {
            health_scenario("health check fails", "/bin/false")
        }),
        ("app remove", app_remove_scenario),
        ("self-update side by side", self_update_scenario),
        ("single-binary self-update", single_binary_scenario),
        ("setup", setup_scenario),
        ("uninstall", uninstall_scenario),
        ("self-uninstall", self_uninstall_scenario),
    ];
    let counts: Vec<(&str, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = builders
            .into_iter()
            .map(|(name, build)| s.spawn(move || (name, build().sweep())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scenario failed"))
            .collect()
    });
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    // Written to the process's stderr, past the test harness's capture, so
    // the count shows in every run's log.
    let mut report = String::new();
    for (name, n) in &counts {
        report.push_str(&format!("{name}: {n} crash points\n"));
    }
    report.push_str(&format!("{total} crash points covered\n"));
    std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes()).unwrap();
    assert!(total >= 24, "only {total} crash points");
}
