//! Who is on the other end of a Unix socket: the kernel's word for the
//! peer's uid, gid and pid (`SO_PEERCRED`), and what `/proc` says of that
//! pid (its supplementary groups, its executable).

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// A connected peer's credentials, as the kernel recorded them when it
/// connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its process id.
    pub pid: i32,
}

impl Peer {
    /// The credentials of the process on the other end of `stream`.
    #[cfg(target_os = "linux")]
    pub fn of(stream: &UnixStream) -> io::Result<Self> {
        let cred = rustix::net::sockopt::socket_peercred(stream)?;
        Ok(Self {
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            pid: cred.pid.as_raw_nonzero().get(),
        })
    }

    /// The credentials of the process on the other end of `stream`
    /// (unsupported on this system).
    #[cfg(not(target_os = "linux"))]
    pub fn of(_stream: &UnixStream) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "peer credentials are read on Linux only",
        ))
    }

    /// Its supplementary groups (from `/proc/<pid>/status`); empty when
    /// the process is gone.
    pub fn groups(&self) -> Vec<u32> {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return Vec::new();
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .map(|g| {
                g.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether it is in group `gid`, as its primary or a supplementary one.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups().contains(&gid)
    }

    /// The executable it runs (`/proc/<pid>/exe`).
    pub fn exe(&self) -> io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/{}/exe", self.pid))
    }
}

/// The effective user id of this process.
pub fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The id of group `name`, from `/etc/group`.
pub fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
            .flatten()
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_names_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.pid, std::process::id() as i32);
        assert_eq!(peer.uid, own_uid());
        assert_eq!(peer.exe().unwrap(), std::env::current_exe().unwrap());
        assert!(peer.in_group(peer.gid));
    }

    #[test]
    fn groups_are_looked_up_by_name() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-upkeep"), None);
    }
}
