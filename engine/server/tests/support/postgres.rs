//! A throwaway PostgreSQL cluster per test, through `scripts/postgres.sh`:
//! started in a temporary directory on a free port of 127.0.0.1, stopped
//! (`pg_ctl stop -m fast`) and deleted on drop. A machine without
//! PostgreSQL fails the test with the script's reason: run
//! `scripts/postgres.sh install` (as root, with apt-get), as
//! `scripts/test.sh` does.

use std::path::PathBuf;
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// `postgres://upkeep@127.0.0.1:PORT/upkeep`.
    pub url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

impl Cluster {
    /// Starts one, or panics saying why it could not.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory for PostgreSQL");
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("running scripts/postgres.sh");
        assert!(
            out.status.success(),
            "PostgreSQL is needed for this test and could not be started \
             (run `scripts/postgres.sh install` as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            url.starts_with("postgres://"),
            "scripts/postgres.sh printed {url:?}"
        );
        Cluster { dir, url }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!(
                "could not stop the PostgreSQL cluster in {}",
                self.dir.path().display()
            );
        }
    }
}
