//! UpdateService end to end: a real `upkeep daemon` on a temporary state
//! root, driven by the `upkeep` command line (which goes through it when it
//! answers), by several clients at once, by raw and hostile frames, by a
//! second user, by a cancel mid-download, SIGTERM and the idle exit.
//! Against the real reference server on loopback (docs/service.md).

#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::plugin_path;
use support::world::{World, copy_dir, noise, text};

const ALPHA: &str = "org.example.alpha";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A state root set up with the binary under test as its active version;
/// its configuration at the default place (`<root>/config.toml`), so
/// commands without `--config` go to the daemon.
struct Machine {
    w: World,
    root: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let mut w = World::new();
        w.serve();
        let root = w.state.clone();
        copy_dir(&w.etc, &root);
        let m = Machine { w, root };
        let out = m.cli(&["setup"]);
        assert!(out.status.success(), "setup: {}", both(&out));
        m
    }

    /// `upkeep <args> --root <root>` (no `--config`).
    fn cli(&self, args: &[&str]) -> Output {
        support::upkeep()
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap()
    }

    fn socket(&self) -> PathBuf {
        self.root.join("ipc.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("upkeep.log")).unwrap_or_default()
    }

    fn prefs(&self) -> Vec<u8> {
        std::fs::read(self.root.join("prefs.json")).unwrap()
    }

    fn install_dir(&self) -> PathBuf {
        self.w.installs.join(ALPHA)
    }

    fn register_args(&self) -> Vec<String> {
        [
            "register",
            "--app",
            ALPHA,
            "--version",
            "0",
            "--install-dir",
            self.install_dir().to_str().unwrap(),
            "--installer",
            plugin_path("install-archive").to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn register(&self) -> Output {
        let args = self.register_args();
        self.cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The installed version's socket.
    fn version_socket(&self) -> PathBuf {
        self.root.join(format!("versions/{VERSION}/ipc.sock"))
    }

    /// Runs `<wrapper…> <installed binary> daemon --root <root> <extra…>`,
    /// its standard error in `<log>`.
    fn launch(&self, wrapper: &[String], extra: &[&str], log: &str) -> Daemon {
        let exe = self.root.join(format!("versions/{VERSION}/upkeep"));
        let log = self.w.path(log);
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&exe);
                cmd
            }
            None => Command::new(&exe),
        };
        let child = cmd
            .env_remove("RUST_LOG")
            .arg("daemon")
            .arg("--root")
            .arg(&self.root)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// Starts the installed version's daemon and waits until it answers.
    fn start_daemon(&self, extra: &[&str]) -> Daemon {
        let mut d = self.launch(&[], extra, "daemon.log");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(answer) = exchange(&self.socket(), b"{\"op\":\"ping\",\"v\":1}\n")
                && answer["ok"] == true
            {
                assert_eq!(answer["pid"], d.child.id(), "{answer}");
                assert_eq!(answer["protocol"], 1, "{answer}");
                return d;
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}): {}", d.stderr());
            }
            assert!(Instant::now() < deadline, "the daemon never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `socket` exists (the daemon, or its manager, bound it).
    fn wait_for(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "no socket: {}", self.stderr());
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

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

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_app(status: &Value, app: &str) -> bool {
    status["apps"]
        .as_array()
        .is_some_and(|apps| apps.iter().any(|a| a["app"] == app))
}

fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn expect_ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", both(out));
    text(&out.stdout)
}

/// One raw exchange: writes `request`, reads up to the answer frame.
fn exchange(socket: &Path, request: &[u8]) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    let mut all = String::new();
    stream.read_to_string(&mut all)?;
    let last = all.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(std::io::Error::other)
}

#[test]
fn the_command_line_goes_through_the_daemon_and_shows_its_progress() {
    let m = Machine::new();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let d = m.start_daemon(&[]);
    let pid = d.child.id();

    let out = m.register();
    assert!(
        expect_ok(&out).contains(&format!("registered {ALPHA} at version 0")),
        "{}",
        both(&out)
    );
    let out = m.cli(&["update"]);
    let all = both(&out);
    expect_ok(&out);
    assert!(all.contains(&format!("{ALPHA}: installed 1.0")), "{all}");
    // The notices streamed from the daemon are printed here as they were there.
    assert!(
        all.contains(&format!("{ALPHA}: downloading http://127.0.0.1:")),
        "{all}"
    );
    let log = m.log();
    for op in ["register", "update"] {
        let served = format!("{op} served over IPC by {VERSION} (pid {pid}): exit 0");
        assert!(log.contains(&served), "{served:?} not in:\n{log}");
    }
    // --json through the daemon is the same summary.
    let out = m.cli(&["update", "--json"]);
    let summary: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
    assert_eq!(summary["apps"][0]["result"], "up-to-date", "{summary:#}");
    let status: Value = serde_json::from_str(&expect_ok(&m.cli(&["status", "--json"]))).unwrap();
    assert_eq!(status["ipc"]["daemon"]["pid"], pid, "{status:#}");
    assert!(has_app(&status, ALPHA), "{status:#}");

    // An operation's error comes back as the command's error.
    let out = m.cli(&["rollback", "--app", ALPHA]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        text(&out.stderr).contains("upkeep: error:"),
        "{}",
        both(&out)
    );

    // --in-process leaves the daemon out.
    let before = m.log().matches("served over IPC").count();
    expect_ok(&m.cli(&["status", "--in-process"]));
    expect_ok(&m.cli(&["update", "--in-process"]));
    assert_eq!(m.log().matches("served over IPC").count(), before);

    let out = m.cli(&["remove", "--app", ALPHA]);
    assert!(
        expect_ok(&out).contains(&format!("{ALPHA}: uninstalled 1.0 and forgotten")),
        "{}",
        both(&out)
    );
    assert!(m.log().contains("remove served over IPC"), "{}", m.log());
}

#[test]
fn install_goes_through_the_daemon() {
    let m = Machine::new();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let d = m.start_daemon(&[]);
    let mut args = m.register_args();
    args.retain(|a| a != "--version" && a != "0");
    args[0] = "install".into();
    let out = m.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let all = both(&out);
    assert!(
        expect_ok(&out).contains(&format!("installed {ALPHA} 1.0 from the update server")),
        "{all}"
    );
    assert!(
        all.contains(&format!("{ALPHA}: downloading http://127.0.0.1:")),
        "{all}"
    );
    let served = format!(
        "install served over IPC by {VERSION} (pid {}): exit 0",
        d.child.id()
    );
    assert!(m.log().contains(&served), "{served:?} not in:\n{}", m.log());
    assert_eq!(
        std::fs::read_to_string(m.install_dir().join("current/bin/alpha")).unwrap(),
        "alpha 1.0\n"
    );
    // The same again: refused by the daemon, nothing changed.
    let prefs = m.prefs();
    let out = m.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains("already installed at 1.0"),
        "{}",
        both(&out)
    );
    assert_eq!(m.prefs(), prefs);
}

#[test]
fn concurrent_clients_are_served_and_changes_run_one_at_a_time() {
    let m = Machine::new();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let _d = m.start_daemon(&[]);
    expect_ok(&m.register());
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 0..8 {
            let m = &m;
            handles.push(s.spawn(move || {
                if i % 4 == 0 {
                    m.cli(&["update"])
                } else {
                    m.cli(&["status", "--json"])
                }
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outputs {
        expect_ok(out);
    }
    // One of the two updates installed 1.0, the other found it up to date.
    let installed = outputs
        .iter()
        .filter(|o| text(&o.stdout).contains(&format!("{ALPHA}: installed 1.0")))
        .count();
    let up_to_date = outputs
        .iter()
        .filter(|o| text(&o.stdout).contains(&format!("{ALPHA}: up to date at 1.0")))
        .count();
    assert_eq!((installed, up_to_date), (1, 1));
    let prefs: Value = serde_json::from_slice(&m.prefs()).unwrap();
    assert_eq!(prefs["apps"][ALPHA]["version"], "1.0");
}

#[test]
fn hostile_frames_and_vanishing_clients_change_nothing_and_the_daemon_serves_on() {
    let m = Machine::new();
    let mut d = m.start_daemon(&[]);
    expect_ok(&m.register());
    let prefs = m.prefs();
    let socket = m.socket();
    let refused = |request: &[u8], why: &str| {
        let answer = exchange(&socket, request).unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(why), "{why:?} not in {error:?}");
    };
    refused(b"not json\n", "not JSON");
    refused(b"[1,2]\n", "not a JSON object");
    refused(b"{\"op\":\"reboot\"}\n", "unknown or malformed request");
    refused(
        b"{\"op\":\"ping\",\"v\":2}\n",
        "protocol version 2 is not served",
    );
    refused(
        b"{\"op\":\"register\",\"registration\":{\"app\":\"x\"}}\n",
        "unknown or malformed request",
    );
    refused(b"{\"op\":\"cancel\"}\n", "nothing is in flight");
    refused(
        br#"{"op":"register","registration":{"app":"x","version":"1","install_dir":"rel/x","installer":"/p.wasm"}}
"#,
        "rel/x is a relative path",
    );
    refused(
        br#"{"op":"install","registration":{"app":"y","version":"0","install_dir":"/opt/y","installer":"/p.wasm"},"offline_dir":"usb"}
"#,
        "usb is a relative path",
    );
    let mut big = vec![b' '; 70 * 1024];
    big.push(b'\n');
    refused(&big, "longer than");
    assert_eq!(m.prefs(), prefs, "a refused request changed the prefs");
    // Half a frame, then gone; a connection that says nothing; one that
    // asks for an update and leaves at once.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"op\":\"upd").unwrap();
    }
    drop(UnixStream::connect(&socket).unwrap());
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"op\":\"update\",\"v\":1}\n").unwrap();
    }
    // A silent client does not hold up the others.
    let _silent = UnixStream::connect(&socket).unwrap();
    let started = Instant::now();
    let answer = exchange(&socket, b"{\"op\":\"ping\"}\n").unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    // (Served one at a time, it would wait out the silent one's 5 s.)
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.stderr());
    // The update whose client left ran to its end all the same.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !m.log().contains("update served over IPC") {
        assert!(Instant::now() < deadline, "{}", m.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.exited_within(Duration::ZERO).is_none(), "{}", d.stderr());
}

#[test]
fn a_cancel_mid_download_leaves_prefs_current_and_the_install_dir() {
    let m = Machine::new();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let _d = m.start_daemon(&[]);
    expect_ok(&m.register());
    expect_ok(&m.cli(&["update"]));
    // A release large enough that the download is still going when the
    // cancel arrives.
    let big = noise(48 << 20);
    m.w.publish_bytes(
        ALPHA,
        "2.0",
        "app.tar.gz",
        &support::world::tar_gz(&[("bin/alpha", b"alpha 2.0\n"), ("big.bin", &big)]),
        &[],
    );
    let prefs = m.prefs();
    let tree = support::world::tree(&m.install_dir());
    let mut stream = UnixStream::connect(m.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(format!("{}\n", json!({"op": "update", "v": 1})).as_bytes())
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut cancelled = false;
    let answer = loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let frame: Value = serde_json::from_str(&line).unwrap();
        if frame["event"] == "progress" && !cancelled {
            let reply = exchange(&m.socket(), b"{\"op\":\"cancel\",\"v\":1}\n").unwrap();
            assert_eq!(reply, json!({"ok": true, "cancelled": "update"}));
            cancelled = true;
        }
        if frame.get("event").is_none() {
            break frame;
        }
    };
    assert!(cancelled, "no progress frame before the answer: {answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["code"], 1, "{answer}");
    assert!(
        answer["stderr"].as_str().unwrap().contains("cancelled"),
        "{answer}"
    );
    assert_eq!(m.prefs(), prefs, "prefs changed");
    assert_eq!(
        support::world::tree(&m.install_dir()),
        tree,
        "the install dir changed"
    );
    // The next update finishes it from the bytes staged.
    let out = m.cli(&["update", "--json"]);
    let summary: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
    assert_eq!(summary["apps"][0]["result"], "updated", "{summary:#}");
    assert!(
        summary["apps"][0]["downloads"][0]["resumed_from"]
            .as_u64()
            .unwrap()
            > 0,
        "{summary:#}"
    );
}

#[test]
fn sigterm_and_the_idle_exit_stop_the_daemon_cleanly() {
    let m = Machine::new();
    let mut d = m.start_daemon(&[]);
    let pid = d.child.id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = d
        .exited_within(Duration::from_secs(10))
        .expect("SIGTERM did not stop the daemon");
    assert!(status.success(), "{status}: {}", d.stderr());
    assert!(
        m.log().contains(&format!(
            "daemon {VERSION} (pid {pid}) exits: asked to stop (SIGTERM)"
        )),
        "{}",
        m.log()
    );
    assert!(!m.version_socket().exists(), "the socket is left behind");

    let mut d = m.start_daemon(&["--idle-exit", "1"]);
    let status = d
        .exited_within(Duration::from_secs(15))
        .expect("the idle daemon did not exit");
    assert!(status.success(), "{status}: {}", d.stderr());
    assert!(m.log().contains("exits: idle for 1 s"), "{}", m.log());
    // Without a daemon the command line runs in-process.
    expect_ok(&m.cli(&["status"]));
}

/// A user other than root, made for the test if missing.
fn other_user() -> Option<(String, u32)> {
    const NAME: &str = "upkeep-test";
    if support::world::text(&Command::new("id").arg("-u").output().ok()?.stdout).trim() != "0" {
        return None;
    }
    let uid = |name: &str| -> Option<u32> {
        let out = Command::new("id").args(["-u", name]).output().ok()?;
        out.status
            .success()
            .then(|| text(&out.stdout).trim().parse().ok())
            .flatten()
    };
    if uid(NAME).is_none() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                NAME,
            ])
            .status()
            .ok()?;
        // Another test may have made it meanwhile.
        if !made.success() && uid(NAME).is_none() {
            return None;
        }
    }
    Some((NAME.to_owned(), uid(NAME)?))
}

/// Lets every user reach `path` (and the directories above it).
fn open_up(path: &Path) {
    let mut p = Some(path);
    while let Some(dir) = p {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode() | 0o055;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
        }
        p = dir.parent();
    }
}

#[test]
fn another_user_may_read_and_update_but_not_change_what_is_registered() {
    let Some((user, uid)) = other_user() else {
        eprintln!("skipped: needs root to create and act as a second user");
        return;
    };
    let m = Machine::new();
    m.w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    let _d = m.start_daemon(&[]);
    expect_ok(&m.register());
    open_up(&m.root.join(format!("versions/{VERSION}")));
    open_up(support::upkeep_bin());
    open_up(&plugin_path("install-archive"));
    let as_user = |args: &[String]| -> Output {
        Command::new("runuser")
            .args(["-u", &user, "--"])
            .arg(support::upkeep_bin())
            .args(args)
            .arg("--root")
            .arg(&m.root)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let strings = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let status = as_user(&strings(&["status", "--json"]));
    let status: Value = serde_json::from_str(&expect_ok(&status)).unwrap();
    assert!(has_app(&status, ALPHA), "{status:#}");
    let out = as_user(&strings(&["update"]));
    assert!(
        expect_ok(&out).contains(&format!("{ALPHA}: installed 1.0")),
        "{}",
        both(&out)
    );
    let prefs = m.prefs();
    for args in [
        m.register_args(),
        strings(&["rollback", "--app", ALPHA]),
        strings(&["remove", "--app", ALPHA]),
    ] {
        let out = as_user(&args);
        assert_eq!(out.status.code(), Some(1), "{}", both(&out));
        let why = format!("needs root; uid {uid} is not allowed");
        assert!(
            text(&out.stderr).contains(&why),
            "{why:?} not in {}",
            both(&out)
        );
        let logged = format!("refused: {} needs root; uid {uid}", args[0]);
        assert!(m.log().contains(&logged), "{logged:?} not in {}", m.log());
    }
    assert_eq!(m.prefs(), prefs, "a refused request changed the prefs");
}

#[test]
fn a_socket_from_the_service_manager_is_served_and_the_daemon_exits_when_idle() {
    let probe = Command::new("systemd-socket-activate")
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: systemd-socket-activate (Debian's systemd package) is not installed");
        return;
    }
    let m = Machine::new();
    let mut config = std::fs::read_to_string(m.root.join("config.toml")).unwrap();
    config.push_str("\n[service]\nidle_exit_seconds = 1\n");
    std::fs::write(m.root.join("config.toml"), config).unwrap();
    let socket = m.version_socket();
    // The stand-in service manager binds the socket, and on the first
    // connection starts the daemon with it (LISTEN_FDS, LISTEN_PID).
    let wrapper = [
        "systemd-socket-activate".to_owned(),
        "--listen".to_owned(),
        socket.display().to_string(),
    ];
    let mut d = m.launch(&wrapper, &[], "activate.log");
    d.wait_for(&socket);
    // The file is there from the manager's bind, a moment before it listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match exchange(&m.socket(), b"{\"op\":\"ping\"}\n") {
            Ok(answer) => break answer,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the manager never listened: {e}: {}", d.stderr()),
        }
    };
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["pid"], d.child.id(), "{answer}");
    let status = expect_ok(&m.cli(&["status"]));
    assert!(status.contains("answers"), "{status}");
    assert!(
        m.log().contains("socket from the service manager"),
        "{}",
        m.log()
    );
    let status = d
        .exited_within(Duration::from_secs(15))
        .expect("the activated daemon did not exit when idle");
    assert!(status.success(), "{status}: {}", d.stderr());
    assert!(m.log().contains("exits: idle for 1 s"), "{}", m.log());
    // The socket is the manager's: the daemon leaves it.
    assert!(socket.exists());
}

#[test]
fn a_per_user_daemon_serves_its_own_user_only() {
    let Some((user, uid)) = other_user() else {
        eprintln!("skipped: needs root to create and act as a second user");
        return;
    };
    let m = Machine::new();
    // The state root belongs to the user; the user runs its daemon.
    let chown = Command::new("chown")
        .arg("-R")
        .arg(&user)
        .arg(&m.root)
        .status()
        .unwrap();
    assert!(chown.success());
    open_up(&m.root);
    open_up(support::upkeep_bin());
    // setpriv executes the daemon in its place (runuser would stay its parent).
    let wrapper = [
        "setpriv".to_owned(),
        format!("--reuid={user}"),
        format!("--regid={user}"),
        "--clear-groups".to_owned(),
    ];
    let mut d = m.launch(&wrapper, &[], "user-daemon.log");
    let socket = m.version_socket();
    d.wait_for(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a per-user socket is its owner's only");
    // Root connects (the mode does not stop root) and is refused all the same.
    let answer = exchange(&m.socket(), b"{\"op\":\"status\"}\n").unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    let why = format!("refused: this daemon serves uid {uid} only; uid 0 asked for status");
    assert_eq!(answer["error"], why.as_str(), "{answer}");
    let out = m.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(text(&out.stderr).contains(&why), "{}", both(&out));
    assert!(m.log().contains(&why), "{}", m.log());
    // Its own user is served.
    let out = Command::new("runuser")
        .args(["-u", &user, "--"])
        .arg(support::upkeep_bin())
        .args(["status", "--json", "--root"])
        .arg(&m.root)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let status: Value = serde_json::from_str(&expect_ok(&out)).unwrap();
    assert_eq!(status["ipc"]["daemon"]["pid"], d.child.id(), "{status:#}");
    let _ = d.exited_within(Duration::ZERO);
}

#[test]
fn a_waiting_version_serves_its_own_binary_its_lifecycle_step_and_nobody_else() {
    let m = Machine::new();
    let _active = m.start_daemon(&[]);
    // A newer version installed side by side, not active yet.
    let next = "9.9.9";
    let dir = m.root.join(format!("versions/{next}"));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("upkeep");
    std::fs::copy(m.root.join(format!("versions/{VERSION}/upkeep")), &exe).unwrap();
    let child = Command::new(&exe)
        .env_remove("RUST_LOG")
        .args(["daemon", "--root"])
        .arg(&m.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(m.w.path("next-daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let mut next_daemon = Daemon {
        child,
        log: m.w.path("next-daemon.log"),
    };
    let internal = dir.join("internal.sock");
    next_daemon.wait_for(&internal);
    assert!(
        !dir.join("ipc.sock").exists(),
        "a waiting version serves no UpdateService"
    );
    let mode = std::fs::metadata(&internal).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Another binary (this test) is refused, and nothing runs.
    let answer = exchange(&internal, b"{\"op\":\"run\",\"v\":1}\n").unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("serves its own binary") && error.contains(next),
        "{error}"
    );
    assert!(m.log().contains("(internal): refused:"), "{}", m.log());
    assert!(!m.log().contains("run served over internal IPC"));
    // Its own binary's wake goes through it: the step qualifies and
    // activates the version (no [qualification] is configured).
    let out = Command::new(&exe)
        .env_remove("RUST_LOG")
        .args(["wake", "--root"])
        .arg(&m.root)
        .output()
        .unwrap();
    let all = both(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("{next}: activated (was {VERSION})")),
        "{all}"
    );
    let served = format!(
        "run served over internal IPC by {next} (pid {}): exit 0",
        next_daemon.child.id()
    );
    assert!(m.log().contains(&served), "{served:?} not in:\n{}", m.log());
    // Active now, it leaves to be started again as the UpdateService.
    let status = next_daemon
        .exited_within(Duration::from_secs(15))
        .expect("the internal-only daemon did not leave once active");
    assert!(status.success(), "{status}: {}", next_daemon.stderr());
    assert!(
        m.log().contains(&format!(
            "exits: {next} is active now; start the daemon again"
        )),
        "{}",
        m.log()
    );
}

#[test]
fn uninstall_through_the_daemon_removes_upkeep_and_the_daemon_leaves() {
    let m = Machine::new();
    let mut d = m.start_daemon(&[]);
    let pid = d.child.id();
    let out = m.cli(&["uninstall"]);
    let all = both(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("upkeep is uninstalled from"), "{all}");
    assert!(!m.root.join("versions").exists(), "{all}");
    assert!(!m.root.join("prefs.json").exists(), "{all}");
    let status = d
        .exited_within(Duration::from_secs(15))
        .expect("the daemon stayed after the uninstall");
    assert!(status.success(), "{status}: {}", d.stderr());
    let served = format!("uninstall served over IPC by {VERSION} (pid {pid}): exit 0");
    assert!(m.log().contains(&served), "{served:?} not in:\n{}", m.log());
}
