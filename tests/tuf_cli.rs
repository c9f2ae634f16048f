//! `upkeep tuf` end to end: a real HTTP server on 127.0.0.1 serves a
//! repository built in code; the real binary runs `init`, `refresh` and
//! `download`; the test checks exit codes, the files left behind and the
//! exact sequence of requests.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use support::upkeep;
use time::{Duration, OffsetDateTime};
use upkeep_core::tuf::metadata::Expiry;
use upkeep_core::tuf::repository::Repository;

/// A one-thread HTTP/1.1 server over a [`Repository`], recording the path of
/// every request. It stops when dropped.
struct Server {
    repo: Arc<Mutex<Repository>>,
    log: Arc<Mutex<Vec<String>>>,
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(repo: Repository) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let repo = Arc::new(Mutex::new(repo));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, l, st) = (repo.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    handle(conn, &r, &l);
                }
            }
        });
        Server {
            repo,
            log,
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(conn: TcpStream, repo: &Mutex<Repository>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let Some(path) = request_line.split_whitespace().nth(1) else {
        return;
    };
    let path = path.trim_start_matches('/').to_owned();
    log.lock().unwrap().push(path.clone());
    let body = repo.lock().unwrap().serve(&path);
    let mut conn = reader.into_inner();
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
}

struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn metadata(&self) -> std::path::PathBuf {
        self.dir.path().join("metadata")
    }
    fn targets(&self) -> std::path::PathBuf {
        self.dir.path().join("targets")
    }
    fn init(&self, root: &[u8]) -> i32 {
        let root_file = self.dir.path().join("initial_root.json");
        std::fs::write(&root_file, root).unwrap();
        std::fs::create_dir_all(self.metadata()).unwrap();
        let out = upkeep()
            .arg("tuf")
            .arg("--metadata-dir")
            .arg(self.metadata())
            .arg("init")
            .arg(&root_file)
            .output()
            .unwrap();
        out.status.code().unwrap_or(-1)
    }
    fn refresh(&self, server: &Server) -> i32 {
        let out = upkeep()
            .arg("tuf")
            .arg("--metadata-url")
            .arg(server.url("metadata"))
            .arg("--metadata-dir")
            .arg(self.metadata())
            .arg("refresh")
            .output()
            .unwrap();
        out.status.code().unwrap_or(-1)
    }
    fn download(&self, server: &Server, names: &[&str]) -> i32 {
        let mut cmd = upkeep();
        cmd.arg("tuf")
            .arg("--metadata-url")
            .arg(server.url("metadata"))
            .arg("--metadata-dir")
            .arg(self.metadata());
        for n in names {
            cmd.arg("--target-name").arg(n);
        }
        cmd.arg("--target-base-url")
            .arg(server.url("targets"))
            .arg("--target-dir")
            .arg(self.targets())
            .arg("download");
        cmd.output().unwrap().status.code().unwrap_or(-1)
    }
}

fn files(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn version(dir: &Path, name: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

fn repository() -> Repository {
    let mut repo = Repository::new(OffsetDateTime::now_utc() + Duration::days(30), true).unwrap();
    repo.add_target("targets", "file.txt", b"hello").unwrap();
    repo.add_target("targets", "dir/app.bin", b"binary payload")
        .unwrap();
    repo.bump_targets("targets").unwrap();
    repo
}

#[test]
fn init_refresh_download() {
    let repo = repository();
    let root = repo.initial_root().unwrap().to_vec();
    let (h1, h2) = (
        repo.targets["targets"].targets["file.txt"].hashes["sha256"].clone(),
        repo.targets["targets"].targets["dir/app.bin"].hashes["sha256"].clone(),
    );
    let server = Server::start(repo);
    let client = Client::new();

    assert_eq!(client.init(&root), 0);
    assert_eq!(server.take_log(), Vec::<String>::new());
    assert_eq!(files(&client.metadata()), set(&["root.json"]));

    assert_eq!(client.refresh(&server), 0);
    assert_eq!(
        server.take_log(),
        s(&[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/2.snapshot.json",
            "metadata/2.targets.json"
        ])
    );
    assert_eq!(
        files(&client.metadata()),
        set(&[
            "last-known-time",
            "root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json"
        ])
    );

    assert_eq!(client.download(&server, &["file.txt", "dir/app.bin"]), 0);
    assert_eq!(
        server.take_log(),
        vec![
            "metadata/2.root.json".to_owned(),
            "metadata/timestamp.json".to_owned(),
            format!("targets/{h1}.file.txt"),
            format!("targets/dir/{h2}.app.bin"),
        ]
    );
    assert_eq!(
        files(&client.targets()),
        set(&["file.txt", "dir%2Fapp.bin"])
    );
    assert_eq!(
        std::fs::read(client.targets().join("dir%2Fapp.bin")).unwrap(),
        b"binary payload"
    );

    // Already downloaded with matching hashes: not fetched again.
    assert_eq!(client.download(&server, &["file.txt"]), 0);
    assert_eq!(
        server.take_log(),
        s(&["metadata/2.root.json", "metadata/timestamp.json"])
    );

    // Unknown target: exit 1, nothing written.
    assert_eq!(client.download(&server, &["missing.txt"]), 1);
    assert_eq!(files(&client.targets()).len(), 2);
    server.take_log();

    // Tampered target: refused, the good copy stays.
    {
        let mut repo = server.repo.lock().unwrap();
        repo.add_target("targets", "new.txt", b"new").unwrap();
        repo.bump_targets("targets").unwrap();
        repo.artifacts.insert("new.txt".into(), b"bad".to_vec());
    }
    assert_eq!(client.download(&server, &["new.txt"]), 1);
    assert_eq!(
        files(&client.targets()),
        set(&["file.txt", "dir%2Fapp.bin"])
    );
}

#[test]
fn rollback_is_refused() {
    let mut repo = repository();
    repo.bump_timestamp().unwrap(); // timestamp v3
    let root = repo.initial_root().unwrap().to_vec();
    let server = Server::start(repo);
    let client = Client::new();
    assert_eq!(client.init(&root), 0);
    assert_eq!(client.refresh(&server), 0);
    assert_eq!(version(&client.metadata(), "timestamp.json"), 3);
    {
        let mut repo = server.repo.lock().unwrap();
        let old = repo.published["timestamp"][0].1.clone();
        repo.overrides.insert("metadata/timestamp.json".into(), old);
    }
    server.take_log();
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(
        server.take_log(),
        s(&["metadata/2.root.json", "metadata/timestamp.json"])
    );
    assert_eq!(version(&client.metadata(), "timestamp.json"), 3);
}

#[test]
fn expired_timestamp_is_refused() {
    let mut repo = repository();
    repo.timestamp.expires = Expiry(OffsetDateTime::now_utc() - Duration::days(1));
    repo.bump_timestamp().unwrap();
    let root = repo.initial_root().unwrap().to_vec();
    let server = Server::start(repo);
    let client = Client::new();
    assert_eq!(client.init(&root), 0);
    assert_eq!(client.refresh(&server), 1);
    assert_eq!(
        server.take_log(),
        s(&["metadata/2.root.json", "metadata/timestamp.json"])
    );
    assert_eq!(
        files(&client.metadata()),
        set(&["last-known-time", "root.json"])
    );
    assert_eq!(client.download(&server, &["file.txt"]), 1);
    assert!(files(&client.targets()).is_empty());
}

#[test]
fn init_refuses_a_root_that_does_not_verify() {
    let repo = repository();
    let mut root: serde_json::Value = serde_json::from_slice(repo.initial_root().unwrap()).unwrap();
    root["signed"]["version"] = serde_json::json!(7);
    let client = Client::new();
    assert_eq!(client.init(&serde_json::to_vec(&root).unwrap()), 1);
    assert!(files(&client.metadata()).is_empty());
}
