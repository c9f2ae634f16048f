//! Where the event store is: `--events postgres://USER@HOST:PORT/DB` or
//! `--events sqlite:PATH`; without one, the repository's `events.sqlite`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::ServerError;
use crate::events::{EventStore, SqliteEventStore};
use crate::events_postgres::{PostgresEventStore, redact};
use crate::repo::Repo;

/// An event store's address, checked but not yet connected to.
#[derive(Debug, Clone)]
pub enum EventsUrl {
    /// An SQLite file (`sqlite:PATH`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://...` or `postgresql://...`).
    Postgres {
        /// The address with its password hidden, for messages.
        shown: String,
        /// The parsed connection settings.
        config: Box<postgres::Config>,
    },
}

impl FromStr for EventsUrl {
    type Err = ServerError;

    fn from_str(url: &str) -> Result<EventsUrl, ServerError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(ServerError::EventsUrlNoPath {
                    url: url.to_owned(),
                });
            }
            return Ok(EventsUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shown = redact(url);
            let config = url.parse::<postgres::Config>().map_err(|source| {
                ServerError::EventsUrlPostgres {
                    url: shown.clone(),
                    source,
                }
            })?;
            return Ok(EventsUrl::Postgres {
                shown,
                config: Box::new(config),
            });
        }
        Err(ServerError::EventsUrlScheme { url: redact(url) })
    }
}

impl std::fmt::Display for EventsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventsUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            EventsUrl::Postgres { shown, .. } => f.write_str(shown),
        }
    }
}

impl EventsUrl {
    /// Opens the store (creating its table when missing).
    pub fn open(&self) -> Result<Arc<dyn EventStore>, ServerError> {
        Ok(match self {
            EventsUrl::Sqlite(path) => Arc::new(SqliteEventStore::open(path)?),
            EventsUrl::Postgres { config, .. } => {
                Arc::new(PostgresEventStore::with_config(config.as_ref().clone())?)
            }
        })
    }
}

/// The store at `events`, else `repo`'s `events.sqlite`.
pub fn open_store(
    events: Option<&EventsUrl>,
    repo: &Repo,
) -> Result<Arc<dyn EventStore>, ServerError> {
    match events {
        Some(url) => url.open(),
        None => Ok(Arc::new(SqliteEventStore::open(&repo.events_path())?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_parsed_with_their_port_user_and_database() {
        let url: EventsUrl = "postgres://upkeep@127.0.0.1:5433/events".parse().unwrap();
        let EventsUrl::Postgres { shown, config } = &url else {
            panic!("not PostgreSQL: {url:?}");
        };
        assert_eq!(shown, "postgres://upkeep@127.0.0.1:5433/events");
        assert_eq!(config.get_user(), Some("upkeep"));
        assert_eq!(config.get_ports(), &[5433]);
        assert_eq!(config.get_dbname(), Some("events"));
        assert!(matches!(
            "postgresql://u@localhost/db".parse::<EventsUrl>(),
            Ok(EventsUrl::Postgres { .. })
        ));
    }

    #[test]
    fn passwords_never_reach_messages() {
        let url: EventsUrl = "postgres://u:hunter2@h:1/d".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h:1/d");
        let err = "mysql://u:hunter2@h/d".parse::<EventsUrl>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        let url: EventsUrl = "sqlite:/srv/events.sqlite".parse().unwrap();
        assert!(matches!(&url, EventsUrl::Sqlite(p) if p == &PathBuf::from("/srv/events.sqlite")));
        assert_eq!(url.to_string(), "sqlite:/srv/events.sqlite");
        let url: EventsUrl = "sqlite:relative.db".parse().unwrap();
        assert!(matches!(&url, EventsUrl::Sqlite(p) if p == &PathBuf::from("relative.db")));
    }

    #[test]
    fn bad_urls_are_refused_with_their_reason() {
        assert!(matches!(
            "sqlite:".parse::<EventsUrl>(),
            Err(ServerError::EventsUrlNoPath { .. })
        ));
        assert!(matches!(
            "/srv/events.sqlite".parse::<EventsUrl>(),
            Err(ServerError::EventsUrlScheme { .. })
        ));
        assert!(matches!(
            "postgres://u@h:notaport/d".parse::<EventsUrl>(),
            Err(ServerError::EventsUrlPostgres { .. })
        ));
    }
}
