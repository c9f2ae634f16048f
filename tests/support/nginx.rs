//! A throwaway stock nginx for the fleet tests: the load balancer in front
//! of several `upkeep repo serve` instances, and the static host of a
//! repository's `metadata/` and `targets/`. Its configuration, logs and
//! pid file live in a directory of the test's; it is stopped on drop.
//! nginx comes from the distribution (`scripts/test.sh` installs it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, or a panic saying how to get it.
pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed: scripts/test.sh installs it (apt-get install nginx-light)");
}

/// A free loopback port (free when asked; taken by whoever binds first).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct Nginx {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Its directory (configuration, logs).
    pub dir: PathBuf,
}

/// What nginx serves.
pub struct Site<'a> {
    /// `host:port` of each `repo serve` instance the Omaha endpoint is
    /// balanced over (round robin).
    pub upstreams: &'a [String],
    /// The repository whose `metadata/` (at `/tuf/`) and `targets/` (at
    /// `/targets/`) nginx serves itself; `None`: those go upstream too.
    pub static_repo: Option<&'a Path>,
}

impl Nginx {
    pub fn start(dir: &Path, site: &Site<'_>) -> Nginx {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = free_port();
        let servers: String = site
            .upstreams
            .iter()
            .map(|u| format!("        server {u};\n"))
            .collect();
        let statics = match site.static_repo {
            Some(repo) => format!(
                "        location /tuf/ {{\n            alias {}/;\n        }}\n        \
                 location = /tuf/timestamp.json {{\n            alias {}/timestamp.json;\n            \
                 add_header Cache-Control no-cache;\n        }}\n        \
                 location /targets/ {{\n            alias {}/;\n        }}\n",
                repo.join("metadata").display(),
                repo.join("metadata").display(),
                repo.join("targets").display()
            ),
            None => "        location / {\n            proxy_pass http://upkeep;\n            \
                     proxy_set_header Host $http_host;\n        }\n"
                .to_owned(),
        };
        let d = dir.display();
        let config = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\ndaemon off;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    log_format fleet '$request_method $uri $status upstream=$upstream_addr';\n    \
             access_log {d}/logs/access.log fleet;\n    sendfile on;\n    \
             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
             scgi_temp_path {d}/scgi;\n    default_type application/octet-stream;\n    \
             upstream upkeep {{\n{servers}    }}\n    \
             server {{\n        listen 127.0.0.1:{port};\n        \
             location /service/ {{\n            proxy_pass http://upkeep;\n            \
             proxy_set_header Host $http_host;\n            proxy_next_upstream off;\n        }}\n\
             {statics}    }}\n}}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let stderr = std::fs::File::create(dir.join("logs/stderr")).unwrap();
        let mut cmd = Command::new(nginx_bin());
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        if nix_is_root() {
            // Workers would switch to `nobody`, who cannot read the test's
            // temporary directory.
            cmd.arg("-g").arg("user root;");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        n.wait_listening();
        n
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self.base.trim_start_matches("http://").to_owned();
        loop {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("logs/stderr")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default()
    }
}

fn nix_is_root() -> bool {
    // The effective uid, as `id -u` prints it.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers before it exits (SIGKILL
        // would leave them serving).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
