//! The requests UpdateService and UpdateServiceInternal serve, and what
//! each needs of its caller.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::register::Registration;

/// The protocol version this build speaks. A request may name it in `"v"`
/// (absent: 1); a daemon refuses a version it does not serve.
pub const PROTOCOL: u64 = 1;

/// A request, as the JSON object on the request line (besides `"v"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Is a daemon there, which version is it, which protocol does it
    /// speak? (A struct variant, so unknown fields are refused.)
    Ping {},
    /// What is in the state root (`upkeep status`).
    Status {
        /// The output as JSON.
        #[serde(default)]
        json: bool,
    },
    /// The effective enterprise policy and its sources (`upkeep policy`).
    Policy {
        /// The output as JSON.
        #[serde(default)]
        json: bool,
    },
    /// The periodic tasks (`upkeep wake`), in a child process.
    Wake {
        /// `--now`: check for updates however recent the last check.
        #[serde(default)]
        now: bool,
        /// `--json`: the update summary as JSON.
        #[serde(default)]
        json: bool,
    },
    /// Check for updates and apply them: one app, or all (`upkeep update`).
    Update {
        /// The app; all when absent.
        #[serde(default)]
        app: Option<String>,
        /// The summary as JSON.
        #[serde(default)]
        json: bool,
    },
    /// Register (or re-register) an app (`upkeep register`).
    Register {
        /// The registration; its paths absolute.
        registration: Box<Registration>,
    },
    /// Register an app and install it (`upkeep install`): from the update
    /// server, or from an offline folder on the daemon's machine.
    Install {
        /// The registration; its paths absolute.
        registration: Box<Registration>,
        /// The offline folder (absolute); the update server when absent.
        #[serde(default)]
        offline_dir: Option<std::path::PathBuf>,
        /// Installer data from the installer tag.
        #[serde(default)]
        installer_data: Option<String>,
    },
    /// Run a command the app registered (`upkeep app-command`).
    AppCommand {
        /// The app.
        app: String,
        /// The command's name.
        name: String,
        /// Its parameters, for `%1`..`%9`.
        #[serde(default)]
        parameters: Vec<String>,
    },
    /// Point an app back at its kept version (`upkeep rollback`).
    Rollback {
        /// The app.
        app: String,
    },
    /// Uninstall an app through its installer (`upkeep remove`).
    Remove {
        /// The app.
        app: String,
    },
    /// Remove upkeep from the state root (`upkeep uninstall`); the daemon
    /// leaves with it.
    Uninstall {},
    /// Cancel the state-changing operation in flight.
    Cancel {},
}

/// A request of UpdateServiceInternal: a version's own lifecycle, served
/// on `versions/<v>/internal.sock` to that version's binary only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InternalRequest {
    /// Is the version's daemon there?
    Ping {},
    /// Run the version's lifecycle step (qualify and activate it, or, once
    /// a newer one is active, uninstall it), as its `wake` does, in a child.
    Run {},
}

/// What a line on the socket says: an operation with a name, sent with the
/// protocol version.
pub trait Op: Serialize {
    /// The operation's name, as in `"op"`.
    fn name(&self) -> &'static str;

    /// The request line's JSON: the request and `"v"`.
    fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("v".to_owned(), Value::from(PROTOCOL));
        }
        value
    }
}

impl Op for InternalRequest {
    fn name(&self) -> &'static str {
        match self {
            InternalRequest::Ping {} => "ping",
            InternalRequest::Run {} => "run",
        }
    }
}

impl Op for Request {
    fn name(&self) -> &'static str {
        Request::name(self)
    }
}

/// What a request needs of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reading: status, ping, cancelling one's own operation.
    Read,
    /// Checking for and applying updates of registered apps.
    Update,
    /// Changing what is registered or how it is installed.
    Admin,
}

impl Request {
    /// The operation's name, as in `"op"`.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping {} => "ping",
            Request::Status { .. } => "status",
            Request::Policy { .. } => "policy",
            Request::Wake { .. } => "wake",
            Request::Update { .. } => "update",
            Request::Register { .. } => "register",
            Request::Install { .. } => "install",
            Request::AppCommand { .. } => "app-command",
            Request::Rollback { .. } => "rollback",
            Request::Remove { .. } => "remove",
            Request::Uninstall {} => "uninstall",
            Request::Cancel {} => "cancel",
        }
    }

    /// What the caller must be allowed.
    pub fn access(&self) -> Access {
        match self {
            Request::Ping {}
            | Request::Status { .. }
            | Request::Policy { .. }
            | Request::Cancel {} => Access::Read,
            Request::Wake { .. } | Request::Update { .. } | Request::AppCommand { .. } => {
                Access::Update
            }
            Request::Register { .. }
            | Request::Install { .. }
            | Request::Rollback { .. }
            | Request::Remove { .. }
            | Request::Uninstall {} => Access::Admin,
        }
    }

    /// Whether it changes state (one such operation runs at a time).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Request::Ping {} | Request::Status { .. } | Request::Policy { .. } | Request::Cancel {}
        )
    }
}

/// Why a request line was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON.
    #[error("the request is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    #[error("the request is not a JSON object")]
    NotObject,
    /// A protocol version this daemon does not serve.
    #[error("protocol version {asked} is not served (this daemon speaks version {PROTOCOL})")]
    Version {
        /// The version asked for, as given.
        asked: String,
    },
    /// An unknown operation, a missing or unknown field, a wrong type.
    #[error("unknown or malformed request: {0}")]
    Malformed(serde_json::Error),
}

/// Parses a request line of UpdateService.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    parse(line)
}

/// Parses a request line: a JSON object, its `"v"` this protocol's.
pub fn parse<T: DeserializeOwned>(line: &[u8]) -> Result<T, RequestError> {
    let value: Value = serde_json::from_slice(line).map_err(RequestError::NotJson)?;
    let Value::Object(mut map) = value else {
        return Err(RequestError::NotObject);
    };
    if let Some(v) = map.remove("v")
        && v.as_u64() != Some(PROTOCOL)
    {
        return Err(RequestError::Version {
            asked: v.to_string(),
        });
    }
    serde_json::from_value(Value::Object(map)).map_err(RequestError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_unknown_ones_do_not() {
        let parse = |s: &str| parse_request(s.as_bytes());
        assert_eq!(parse(r#"{"op":"ping"}"#).unwrap(), Request::Ping {});
        assert_eq!(parse(r#"{"op":"ping","v":1}"#).unwrap(), Request::Ping {});
        assert_eq!(
            parse(r#"{"op":"wake","now":true}"#).unwrap(),
            Request::Wake {
                now: true,
                json: false
            }
        );
        assert_eq!(
            parse(r#"{"op":"update"}"#).unwrap(),
            Request::Update {
                app: None,
                json: false
            }
        );
        assert_eq!(
            parse(r#"{"op":"rollback","app":"a"}"#).unwrap(),
            Request::Rollback { app: "a".into() }
        );
        assert!(matches!(
            parse(r#"{"op":"ping","v":2}"#),
            Err(RequestError::Version { .. })
        ));
        assert!(matches!(parse("[]"), Err(RequestError::NotObject)));
        assert!(matches!(parse("{"), Err(RequestError::NotJson(_))));
        for bad in [
            r#"{"op":"reboot"}"#,
            r#"{"op":"wake","now":"yes"}"#,
            r#"{"op":"ping","x":1}"#,
            r#"{"op":"rollback"}"#,
            r#"{"op":"register","registration":{"app":"a"}}"#,
            r#"{}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(RequestError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_request_round_trips_with_its_version() {
        let registration = Registration::new("a", "1.0".parse().unwrap(), "/opt/a", "/p/i.wasm");
        for request in [
            Request::Ping {},
            Request::Status { json: true },
            Request::Wake {
                now: true,
                json: true,
            },
            Request::Update {
                app: Some("a".into()),
                json: false,
            },
            Request::Register {
                registration: Box::new(registration.clone()),
            },
            Request::Install {
                registration: Box::new(registration),
                offline_dir: Some("/media/offline".into()),
                installer_data: Some("x=1".into()),
            },
            Request::AppCommand {
                app: "a".into(),
                name: "repair".into(),
                parameters: vec!["full".into()],
            },
            Request::Rollback { app: "a".into() },
            Request::Remove { app: "a".into() },
            Request::Uninstall {},
            Request::Cancel {},
        ] {
            let line = serde_json::to_vec(&request.to_json()).unwrap();
            assert_eq!(parse_request(&line).unwrap(), request);
        }
    }

    #[test]
    fn internal_requests_parse() {
        assert_eq!(
            parse::<InternalRequest>(br#"{"op":"run","v":1}"#).unwrap(),
            InternalRequest::Run {}
        );
        assert!(matches!(
            parse::<InternalRequest>(br#"{"op":"update"}"#),
            Err(RequestError::Malformed(_))
        ));
        let line = serde_json::to_vec(&InternalRequest::Ping {}.to_json()).unwrap();
        assert_eq!(
            parse::<InternalRequest>(&line).unwrap(),
            InternalRequest::Ping {}
        );
    }

    #[test]
    fn access_classes() {
        assert_eq!(Request::Status { json: false }.access(), Access::Read);
        assert_eq!(Request::Policy { json: true }.access(), Access::Read);
        assert!(!Request::Policy { json: true }.changes_state());
        assert_eq!(
            Request::Update {
                app: None,
                json: false
            }
            .access(),
            Access::Update
        );
        assert_eq!(Request::Remove { app: "a".into() }.access(), Access::Admin);
        assert!(!Request::Cancel {}.changes_state());
        assert!(Request::Rollback { app: "a".into() }.changes_state());
    }
}
