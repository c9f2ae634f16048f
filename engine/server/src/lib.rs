//! upkeep's update repositories: publishing and the reference server.
//!
//! * [`repo`] creates and edits a repository directory: keys, TUF metadata
//!   (consistent snapshots, python-tuf's JSON format), target files and the
//!   trust bundle a client pins (`client/`); [`publish`] is where every new
//!   metadata version is signed and written.
//! * [`delegation`] delegates trust to team roles: their keys, nested and
//!   terminating delegations, hashed bins, revocation and rotation, and
//!   publishing a release with only a team's key.
//! * [`graph`] reads a repository's current metadata and delegation graph
//!   and lists the releases a TUF client would accept from it.
//! * [`decision`] reads releases from the signed targets metadata and
//!   answers an Omaha update check from the request alone.
//! * [`events`] stores the pings and events clients send ([`EventStore`],
//!   SQLite by default; [`events_postgres`] for a fleet sharing one
//!   PostgreSQL database; [`events_url`] reads `--events`);
//!   [`group_commit`] groups the commits of concurrent requests into one
//!   transaction and one flush; [`stats`] computes rollout statistics.
//! * [`http`] is the reference Omaha server: update checks in 3.0 XML,
//!   3.1 and 4.0 JSON with CUP signatures, and the repository's files with
//!   single-range support ([`files`]).
//!
//! The server keeps no state but the event store: several instances can
//! serve one repository directory.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod answer;
pub mod dashboard;
pub mod dashboard_data;
pub mod dashboard_http;
pub mod decision;
pub mod delegation;
pub mod dir_watch;
pub mod error;
pub mod events;
pub mod events_postgres;
pub mod events_url;
pub mod files;
pub mod graph;
pub mod group_commit;
pub mod http;
pub mod keys;
pub mod offline_export;
pub mod patches;
pub mod publish;
pub mod repo;
pub mod rollout;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod view;

pub use error::ServerError;
pub use events::{EventRecord, EventStore, SqliteEventStore};
pub use events_postgres::PostgresEventStore;
pub use events_url::EventsUrl;
pub use group_commit::{GroupCommit, GroupCommitOptions};
pub use stats::{AdoptionPoint, FailureCount, StatsQuery, VersionStats};
