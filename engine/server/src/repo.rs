//! A repository directory: settings, keys, TUF metadata, target files and
//! the trust bundle for clients.
//!
//! ```text
//! DIR/repo.toml           settings (CUP key id, expiry, public URL, key directory)
//! DIR/metadata/           TUF metadata, consistent snapshots:
//!     1.root.json ...     every root version, and root.json (the newest)
//!     N.targets.json      every targets version
//!     N.snapshot.json     every snapshot version
//!     N.<role>.json       every version of a delegated role (see `delegation`)
//!     timestamp.json      the newest timestamp (written last: the commit point)
//! DIR/targets/apps/<app>/<version>/<sha256>.<file>   the payload
//! DIR/targets/apps/<app>/<version>/<file>            a hard link to it
//! DIR/keys/               keys (unless `--keys` put them elsewhere)
//!     retired/            key files replaced by `repo rotate`
//! DIR/client/             root.json, cup.pub.pem, config.toml for clients
//! DIR/events.sqlite       the event store
//! ```

use std::collections::BTreeMap;
use std::fs;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use upkeep_core::app_command::AppCommand;
use upkeep_core::tuf::metadata::{
    RoleKeys, Root, SPEC_VERSION, TOP_LEVEL_ROLES, TargetFile, sign_metadata,
};
use upkeep_core::tuf::{Ed25519Signer, Signer};
use upkeep_core::version::Version;

use crate::decision::{Catalog, release_dir};
use crate::error::ServerError;
pub use crate::graph::{Current, load_current};
use crate::keys;
pub use crate::publish::Published;
use crate::publish::{Publication, create_new, expiry_in, staging, write};

/// The settings file.
pub const SETTINGS_FILE: &str = "repo.toml";
/// The metadata directory, served at `/tuf/`.
pub const METADATA_DIR: &str = "metadata";
/// The target directory, served at `/targets/`.
pub const TARGETS_DIR: &str = "targets";
/// The default key directory.
pub const KEYS_DIR: &str = "keys";
/// The directory under the key directory that `repo rotate` moves
/// replaced key files to.
pub const RETIRED_KEYS_DIR: &str = "retired";
/// The client trust bundle directory.
pub const CLIENT_DIR: &str = "client";
/// The event store file.
pub const EVENTS_FILE: &str = "events.sqlite";
/// The server URL written to `client/config.toml` without `--public-url`.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8080";

/// Metadata lifetimes, in days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpiryDays {
    /// Root metadata.
    pub root: u32,
    /// Targets metadata (re-signed by `repo add`).
    pub targets: u32,
    /// Snapshot metadata (re-signed by `repo add` and `repo refresh`).
    pub snapshot: u32,
    /// Timestamp metadata (re-signed by `repo add` and `repo refresh`).
    pub timestamp: u32,
}

impl Default for ExpiryDays {
    fn default() -> Self {
        ExpiryDays {
            root: 365,
            targets: 90,
            snapshot: 30,
            timestamp: 7,
        }
    }
}

/// The contents of `repo.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The CUP key id clients pin.
    pub cup_key_id: u32,
    /// The public base URL of the server, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The key directory, when not `DIR/keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<PathBuf>,
    /// Metadata lifetimes.
    #[serde(default)]
    pub expiry_days: ExpiryDays,
    /// `repo add` without `--delta-from` publishes patches from this many
    /// of the app's newest older releases on the same channel (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delta_from_last: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Options of [`Repo::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where the keys go (default `DIR/keys`).
    pub keys_dir: Option<PathBuf>,
    /// Number of root keys.
    pub root_keys: usize,
    /// Root threshold.
    pub root_threshold: u64,
    /// Public base URL of the server.
    pub public_url: Option<String>,
    /// CUP key id.
    pub cup_key_id: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            keys_dir: None,
            root_keys: 1,
            root_threshold: 1,
            public_url: None,
            cup_key_id: 1,
        }
    }
}

/// The most bytes of one install data text.
pub const MAX_INSTALL_DATA_BYTES: usize = 64 * 1024;

/// Checks an install data index: 1 to 128 characters, no control characters.
pub fn check_install_data_index(index: &str) -> Result<(), ServerError> {
    if index.is_empty() || index.len() > 128 || index.chars().any(char::is_control) {
        return Err(ServerError::Invalid(format!(
            "invalid install data index {index:?}: give 1 to 128 characters without control characters"
        )));
    }
    Ok(())
}

/// A release to publish with [`Repo::add`].
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// App id.
    pub app: String,
    /// Version.
    pub version: String,
    /// Channel (empty: the default channel).
    pub channel: String,
    /// Installer arguments.
    pub installer_args: Vec<String>,
    /// Omaha install data, text by index; signed with the release in the
    /// targets metadata (see [`MAX_INSTALL_DATA_BYTES`]).
    pub install_data: BTreeMap<String, String>,
    /// App commands the release brings: name → command line, its program
    /// a path inside the app's live version ([`AppCommand::parse_release`]);
    /// signed with the release in the targets metadata.
    pub commands: BTreeMap<String, String>,
    /// Earlier releases to publish a patch from, to each payload they have
    /// too ([`crate::patches`]).
    pub delta_from: Vec<Version>,
    /// The format of those patches; `None` makes both and publishes the
    /// smaller ([`upkeep_core::delta::make_patch_as`]).
    pub patch_format: Option<upkeep_core::delta::PatchFormat>,
    /// Payload files.
    pub payloads: Vec<PathBuf>,
}

/// What [`Repo::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The rotated role.
    pub role: String,
    /// The key ids the previous root listed for the role.
    pub old_key_ids: Vec<String>,
    /// The key ids the new root lists for it.
    pub new_key_ids: Vec<String>,
    /// The new root version.
    pub root_version: u64,
    /// Where the old key files went.
    pub retired: Vec<PathBuf>,
    /// The targets, snapshot and timestamp versions now published.
    pub published: Published,
}

/// An opened repository directory.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    settings: Settings,
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "{}-_.".contains(c)
}

fn is_file_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.+~".contains(c)
}

/// Checks an app id: 1 to 128 characters from `A-Z a-z 0-9 { } - _ .`,
/// not starting with a dot.
pub fn check_app_id(app: &str) -> Result<(), ServerError> {
    if app.is_empty() || app.len() > 128 || app.starts_with('.') || !app.chars().all(is_id_char) {
        return Err(ServerError::Invalid(format!(
            "invalid app id {app:?}: use 1 to 128 characters from A-Z a-z 0-9 {{ }} - _ . \
             (not starting with a dot)"
        )));
    }
    Ok(())
}

/// Checks a payload file name: 1 to 200 characters from
/// `A-Z a-z 0-9 - _ . + ~`, not starting with a dot.
pub fn check_file_name(name: &str) -> Result<(), ServerError> {
    if name.is_empty()
        || name.len() > 200
        || name.starts_with('.')
        || !name.chars().all(is_file_name_char)
    {
        return Err(ServerError::Invalid(format!(
            "invalid payload file name {name:?}: use 1 to 200 characters from \
             A-Z a-z 0-9 - _ . + ~ (not starting with a dot)"
        )));
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), ServerError> {
    fs::create_dir_all(path).map_err(|e| ServerError::io(path, e))
}

/// The `client/config.toml` of a repository.
pub fn client_config(server: &str, cup_key_id: u32) -> String {
    let server = toml::Value::String(server.to_owned());
    format!(
        "# What a machine needs to trust this repository. Relative paths are\n\
         # relative to this file.\n\
         server = {server}\n\
         protocol = \"3.1\"\n\
         tuf_root = \"root.json\"\n\
         cup_key_id = {cup_key_id}\n\
         cup_public_key = \"cup.pub.pem\"\n"
    )
}

impl Repo {
    /// Creates a repository in `dir` (which must not exist or be empty):
    /// keys, version 1 of every role, the client bundle and `repo.toml`.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<Repo, ServerError> {
        if options.root_keys == 0 || options.root_keys > 64 {
            return Err(ServerError::Invalid(
                "--root-keys must be between 1 and 64".into(),
            ));
        }
        if options.root_threshold == 0 || options.root_threshold > options.root_keys as u64 {
            return Err(ServerError::Invalid(format!(
                "--root-threshold must be between 1 and the number of root keys ({})",
                options.root_keys
            )));
        }
        if let Some(url) = &options.public_url {
            check_public_url(url)?;
        }
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| ServerError::io(dir, e))?;
            if entries.next().is_some() {
                return Err(ServerError::Invalid(format!(
                    "{} exists and is not empty",
                    dir.display()
                )));
            }
        }
        let keys_dir = options
            .keys_dir
            .clone()
            .unwrap_or_else(|| dir.join(KEYS_DIR));
        for sub in [METADATA_DIR, TARGETS_DIR, CLIENT_DIR] {
            create_dir(&dir.join(sub))?;
        }
        create_dir(&keys_dir)?;
        for i in 1..=options.root_keys {
            let p = keys_dir.join(keys::role_key_file("root", i));
            if p.exists() {
                return Err(ServerError::key(
                    &p,
                    "already exists; use an empty key directory",
                ));
            }
        }

        let mut root_signers = Vec::new();
        for i in 1..=options.root_keys {
            root_signers.push(keys::generate_ed25519(
                &keys_dir.join(keys::role_key_file("root", i)),
            )?);
        }
        let mut role_signers = BTreeMap::new();
        for role in ["targets", "snapshot", "timestamp"] {
            let signer = keys::generate_ed25519(&keys_dir.join(keys::role_key_file(role, 0)))?;
            role_signers.insert(role, signer);
        }
        let cup_public = keys::generate_cup_key(&keys_dir)?;

        let settings = Settings {
            cup_key_id: options.cup_key_id,
            public_url: options.public_url.clone(),
            keys_dir: options
                .keys_dir
                .as_ref()
                .map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone())),
            expiry_days: ExpiryDays::default(),
            delta_from_last: 0,
        };

        let mut root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expiry_in(settings.expiry_days.root),
            consistent_snapshot: true,
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            unrecognized: BTreeMap::new(),
        };
        for s in &root_signers {
            root.keys.insert(s.key_id(), s.public_key().clone());
        }
        root.roles.insert(
            "root".into(),
            RoleKeys::new(
                root_signers.iter().map(Ed25519Signer::key_id).collect(),
                options.root_threshold,
            ),
        );
        for (role, s) in &role_signers {
            root.keys.insert(s.key_id(), s.public_key().clone());
            root.roles
                .insert((*role).into(), RoleKeys::new(vec![s.key_id()], 1));
        }
        let dyns: Vec<&dyn Signer> = root_signers.iter().map(|s| s as &dyn Signer).collect();
        let root_bytes = sign_metadata(&root, &dyns)?;
        let md = dir.join(METADATA_DIR);
        write(&md.join("1.root.json"), &root_bytes)?;
        write(&md.join("root.json"), &root_bytes)?;

        let mut written = Vec::new();
        let mut first = Publication::first(md.clone(), settings.expiry_days.clone());
        first.stage_targets(
            "targets",
            upkeep_core::tuf::repository::Repository::empty_targets(OffsetDateTime::now_utc()),
            &[&role_signers["targets"]],
            &mut written,
        )?;
        first.publish(
            &role_signers["snapshot"],
            &role_signers["timestamp"],
            &mut written,
        )?;

        let client = dir.join(CLIENT_DIR);
        write(&client.join("root.json"), &root_bytes)?;
        write(
            &client.join(keys::CUP_PUBLIC_KEY_FILE),
            cup_public.as_bytes(),
        )?;
        let server = options
            .public_url
            .as_deref()
            .unwrap_or(DEFAULT_SERVER_URL)
            .trim_end_matches('/');
        write(
            &client.join("config.toml"),
            client_config(server, options.cup_key_id).as_bytes(),
        )?;

        let text = toml::to_string_pretty(&settings).map_err(|e| ServerError::Settings {
            path: dir.join(SETTINGS_FILE),
            reason: e.to_string(),
        })?;
        let text = format!("# upkeep repository settings (see docs/repository.md).\n{text}");
        write(&dir.join(SETTINGS_FILE), text.as_bytes())?;
        Ok(Repo {
            dir: dir.to_path_buf(),
            settings,
        })
    }

    /// Opens the repository in `dir`.
    pub fn open(dir: &Path) -> Result<Repo, ServerError> {
        let path = dir.join(SETTINGS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ServerError::Settings {
                    path,
                    reason: "not found: is this a repository? (create one with `upkeep repo init`)"
                        .into(),
                });
            }
            Err(e) => return Err(ServerError::io(path, e)),
        };
        let settings: Settings = toml::from_str(&text).map_err(|e| ServerError::Settings {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(url) = &settings.public_url {
            check_public_url(url)?;
        }
        Ok(Repo {
            dir: dir.to_path_buf(),
            settings,
        })
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `DIR/metadata`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join(METADATA_DIR)
    }

    /// `DIR/targets`.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join(TARGETS_DIR)
    }

    /// `DIR/events.sqlite`.
    pub fn events_path(&self) -> PathBuf {
        self.dir.join(EVENTS_FILE)
    }

    /// The key directory: `override_dir`, else the one `repo.toml` names,
    /// else `DIR/keys`.
    pub fn keys_dir(&self, override_dir: Option<&Path>) -> PathBuf {
        override_dir
            .map(Path::to_path_buf)
            .or_else(|| self.settings.keys_dir.clone())
            .unwrap_or_else(|| self.dir.join(KEYS_DIR))
    }

    /// Reads the newest metadata (every delegated role the snapshot lists
    /// included) and checks the top-level targets signatures against the
    /// newest root.
    pub fn current(&self) -> Result<Current, ServerError> {
        load_current(&self.metadata_dir())
    }

    /// The releases the current signed metadata offers: everything a TUF
    /// client finds through the delegation graph ([`Current::catalog`]).
    pub fn catalog(&self) -> Result<Catalog, ServerError> {
        Ok(self.current()?.catalog())
    }

    /// The key of top-level role `role` from `keys_dir`, checked against
    /// `root`.
    pub(crate) fn signer(
        &self,
        keys_dir: &Path,
        root: &Root,
        role: &str,
    ) -> Result<Ed25519Signer, ServerError> {
        let path = keys_dir.join(keys::role_key_file(role, 0));
        let signer = keys::load_ed25519(&path)?;
        let allowed = root
            .role(role)
            .is_some_and(|r| r.keyids.contains(&signer.key_id()));
        if !allowed {
            return Err(ServerError::key(
                &path,
                format!("not a {role} key of this repository's root"),
            ));
        }
        Ok(signer)
    }

    /// Publishes a release in the top-level targets role: copies the
    /// payloads into `targets/`, adds them to the targets metadata and
    /// re-signs targets, snapshot and timestamp. Until the new
    /// `timestamp.json` is in place the old metadata stays current; a
    /// failure removes what was written. (A team publishes into its own
    /// delegated role with [`Repo::add_to_role`].)
    pub fn add(
        &self,
        keys_dir: Option<&Path>,
        release: &NewRelease,
    ) -> Result<Published, ServerError> {
        let prepared = prepare_release(release)?;
        let current = self.current()?;
        let keys_dir = self.keys_dir(keys_dir);
        let targets_signer = self.signer(&keys_dir, &current.root, "targets")?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;
        prepared.check_unpublished(&current.catalog())?;
        staging(|written| {
            let mut new_targets = current.targets.clone();
            new_targets
                .targets
                .extend(self.copy_release(&prepared, release, written)?);
            let mut publication = self.publication(&current);
            publication.stage_targets("targets", new_targets, &[&targets_signer], written)?;
            publication.publish(&snapshot_signer, &timestamp_signer, written)
        })
    }

    /// A publication on top of `current`, with this repository's
    /// metadata lifetimes.
    pub(crate) fn publication(&self, current: &Current) -> Publication {
        Publication::new(
            self.metadata_dir(),
            self.settings.expiry_days.clone(),
            &current.snapshot,
            &current.timestamp,
        )
    }

    /// The online keys, `snapshot.key` and `timestamp.key`, checked
    /// against `root`.
    pub(crate) fn online_signers(
        &self,
        keys_dir: &Path,
        root: &Root,
    ) -> Result<(Ed25519Signer, Ed25519Signer), ServerError> {
        Ok((
            self.signer(keys_dir, root, "snapshot")?,
            self.signer(keys_dir, root, "timestamp")?,
        ))
    }

    /// Copies a checked release's payloads into `targets/` and returns its
    /// target files by path (recording the files written).
    pub(crate) fn copy_release(
        &self,
        prepared: &PreparedRelease,
        release: &NewRelease,
        written: &mut Vec<PathBuf>,
    ) -> Result<Vec<(String, TargetFile)>, ServerError> {
        let release_path = self.targets_dir().join(&prepared.dir);
        create_dir(&release_path)?;
        let mut files = Vec::new();
        for (payload, name) in release.payloads.iter().zip(&prepared.names) {
            let (mut file, hashed, plain) = copy_payload(payload, &release_path, name)?;
            written.push(hashed);
            written.push(plain);
            file.custom = Some(prepared.custom.clone());
            files.push((prepared.target_path(name), file));
        }
        let catalog = self.catalog()?;
        let delta_from = if release.delta_from.is_empty() {
            crate::patches::last_releases(
                &catalog,
                &prepared.app,
                &prepared.version,
                &release.channel,
                self.settings.delta_from_last,
            )
        } else {
            release.delta_from.clone()
        };
        if !delta_from.is_empty() {
            let payloads: Vec<(PathBuf, String)> = release
                .payloads
                .iter()
                .cloned()
                .zip(prepared.names.iter().cloned())
                .collect();
            let made = crate::patches::make_patches(
                &catalog,
                &prepared.app,
                &prepared.version,
                &payloads,
                &delta_from,
                release.patch_format,
                |old, name| self.targets_dir().join(old.dir()).join(name),
            )?;
            for patch in made {
                let source = release_path.join(format!(".{}.made", patch.name));
                fs::write(&source, &patch.bytes).map_err(|e| ServerError::io(&source, e))?;
                written.push(source.clone());
                let (mut file, hashed, plain) = copy_payload(&source, &release_path, &patch.name)?;
                let _ = fs::remove_file(&source);
                written.push(hashed);
                written.push(plain);
                file.custom =
                    Some(serde_json::json!({ upkeep_core::delta::PATCH_KEY: patch.info }));
                files.push((prepared.target_path(&patch.name), file));
            }
        }
        Ok(files)
    }

    /// Re-signs snapshot and timestamp with fresh expiry dates (needs only
    /// the online keys `snapshot.key` and `timestamp.key`).
    pub fn refresh(&self, keys_dir: Option<&Path>) -> Result<Published, ServerError> {
        let current = self.current()?;
        let keys_dir = self.keys_dir(keys_dir);
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;
        staging(|written| {
            self.publication(&current)
                .publish(&snapshot_signer, &timestamp_signer, written)
        })
    }

    /// Rotates the key of a top-level role (`root`, `targets`, `snapshot`
    /// or `timestamp`): generates fresh ed25519 keys for it (as many as the
    /// role has), writes root version N+1 listing them instead of the old
    /// ones, signed by the current root keys (and by the new ones when
    /// rotating root), and re-signs snapshot and timestamp (and targets,
    /// when its key changed) in new versions.
    ///
    /// The old key files move to `KEYDIR/retired/<name>.v<N>.key` (N: the
    /// last root version that trusts them). Needs the root keys (at least
    /// the root threshold of them), `snapshot.key` and `timestamp.key`;
    /// the old key of the rotated role may be missing (a lost key is a
    /// reason to rotate). A failure leaves metadata, client bundle and key
    /// files as they were.
    pub fn rotate(&self, keys_dir: Option<&Path>, role: &str) -> Result<Rotated, ServerError> {
        if !TOP_LEVEL_ROLES.contains(&role) {
            return Err(ServerError::Invalid(format!(
                "invalid role {role:?}: give root, targets, snapshot or timestamp"
            )));
        }
        let current = self.current()?;
        let keys_dir = self.keys_dir(keys_dir);
        let old_root = &current.root;
        let version = old_root.version;
        let root_role = old_root
            .role("root")
            .ok_or_else(|| ServerError::Metadata("root has no root role".into()))?;
        let rotated_role = old_root
            .role(role)
            .ok_or_else(|| ServerError::Metadata(format!("root has no {role} role")))?
            .clone();

        // The current root keys: root-1.key … root-N.key, at least the threshold.
        let mut root_signers = Vec::new();
        for i in 1..=root_role.keyids.len() {
            let path = keys_dir.join(keys::role_key_file("root", i));
            if !path.exists() {
                continue;
            }
            let signer = keys::load_ed25519(&path)?;
            if !root_role.keyids.contains(&signer.key_id()) {
                return Err(ServerError::key(
                    &path,
                    "not a root key of this repository's root",
                ));
            }
            root_signers.push(signer);
        }
        if (root_signers.len() as u64) < root_role.threshold {
            return Err(ServerError::key(
                &keys_dir,
                format!(
                    "{} root key file(s) found; signing a new root needs {}",
                    root_signers.len(),
                    root_role.threshold
                ),
            ));
        }

        // The key files of the rotated role, and which of them exist.
        let count = rotated_role.keyids.len().max(1);
        let files: Vec<String> = if role == "root" {
            (1..=count)
                .map(|i| keys::role_key_file("root", i))
                .collect()
        } else {
            vec![keys::role_key_file(role, 0)]
        };
        let mut old_files = Vec::new();
        for f in &files {
            let path = keys_dir.join(f);
            if !path.exists() {
                continue;
            }
            let signer = keys::load_ed25519(&path)?;
            if !rotated_role.keyids.contains(&signer.key_id()) {
                return Err(ServerError::key(
                    &path,
                    format!("not a {role} key of this repository's root"),
                ));
            }
            let stem = f.strip_suffix(".key").unwrap_or(f);
            let retired = keys_dir
                .join(RETIRED_KEYS_DIR)
                .join(format!("{stem}.v{version}.key"));
            if retired.exists() {
                return Err(ServerError::key(&retired, "already exists"));
            }
            old_files.push((path, retired));
        }
        let snapshot_signer = (role != "snapshot")
            .then(|| self.signer(&keys_dir, old_root, "snapshot"))
            .transpose()?;
        let timestamp_signer = (role != "timestamp")
            .then(|| self.signer(&keys_dir, old_root, "timestamp"))
            .transpose()?;

        let md = self.metadata_dir();
        let client_root = self.dir.join(CLIENT_DIR).join("root.json");
        let mut staged_keys: Vec<PathBuf> = Vec::new();
        let mut written: Vec<PathBuf> = Vec::new();
        let mut renamed: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut replaced: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
        let result = (|| -> Result<Rotated, ServerError> {
            // New keys, first under a temporary name.
            let mut new_signers = Vec::new();
            for f in &files {
                let path = keys_dir.join(format!("{f}.new"));
                if path.exists() {
                    return Err(ServerError::key(
                        &path,
                        "left over from an interrupted rotation; remove it and rotate again",
                    ));
                }
                let signer = keys::generate_ed25519(&path)?;
                staged_keys.push(path);
                new_signers.push(signer);
            }
            let new_ids: Vec<String> = new_signers.iter().map(Ed25519Signer::key_id).collect();

            // Root N+1: the new keys replace the old ones of the role.
            let mut root = old_root.clone();
            root.version = version + 1;
            root.expires = expiry_in(self.settings.expiry_days.root);
            root.roles.insert(
                role.to_owned(),
                RoleKeys::new(
                    new_ids.clone(),
                    rotated_role.threshold.min(new_ids.len() as u64),
                ),
            );
            for id in &rotated_role.keyids {
                if !root.roles.values().any(|r| r.keyids.contains(id)) {
                    root.keys.remove(id);
                }
            }
            for s in &new_signers {
                root.keys.insert(s.key_id(), s.public_key().clone());
            }
            let mut signers: Vec<&dyn Signer> =
                root_signers.iter().map(|s| s as &dyn Signer).collect();
            if role == "root" {
                signers.extend(new_signers.iter().map(|s| s as &dyn Signer));
            }
            let root_bytes = sign_metadata(&root, &signers)?;
            let path = md.join(format!("{}.root.json", root.version));
            create_new(&path, &root_bytes)?;
            written.push(path);

            // New targets (re-signed with a new targets key), snapshot, timestamp.
            let new_signer = |r: &str| (role == r).then(|| &new_signers[0]);
            let snapshot_signer = new_signer("snapshot")
                .or(snapshot_signer.as_ref())
                .ok_or_else(|| ServerError::Metadata("no snapshot key".into()))?;
            let timestamp_signer = new_signer("timestamp")
                .or(timestamp_signer.as_ref())
                .ok_or_else(|| ServerError::Metadata("no timestamp key".into()))?;
            let mut publication = self.publication(&current);
            if let Some(signer) = new_signer("targets") {
                publication.stage_targets(
                    "targets",
                    current.targets.clone(),
                    &[signer],
                    &mut written,
                )?;
            }
            let (published, timestamp_bytes) =
                publication.seal(snapshot_signer, timestamp_signer, &mut written)?;

            // Key files: the old ones retired, the new ones in place.
            if !old_files.is_empty() {
                create_dir(&keys_dir.join(RETIRED_KEYS_DIR))?;
            }
            let mut retired = Vec::new();
            for (old, to) in &old_files {
                fs::rename(old, to).map_err(|e| ServerError::io(old, e))?;
                renamed.push((to.clone(), old.clone()));
                retired.push(to.clone());
            }
            for (staged, f) in staged_keys.iter().zip(&files) {
                let to = keys_dir.join(f);
                fs::rename(staged, &to).map_err(|e| ServerError::io(staged, e))?;
                renamed.push((to, staged.clone()));
            }
            upkeep_core::durable::sync_dir(&keys_dir).map_err(|e| ServerError::io(&keys_dir, e))?;

            // The commit point, then the newest root and the client bundle.
            for (path, bytes) in [
                (md.join("timestamp.json"), &timestamp_bytes),
                (md.join("root.json"), &root_bytes),
                (client_root.clone(), &root_bytes),
            ] {
                let old = match fs::read(&path) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(ServerError::io(&path, e)),
                };
                replaced.push((path.clone(), old));
                write(&path, bytes)?;
            }
            Ok(Rotated {
                role: role.to_owned(),
                old_key_ids: rotated_role.keyids.clone(),
                new_key_ids: new_ids,
                root_version: root.version,
                retired,
                published,
            })
        })();
        if result.is_err() {
            for (path, old) in replaced.iter().rev() {
                let _ = match old {
                    Some(bytes) => write(path, bytes),
                    None => fs::remove_file(path).map_err(|e| ServerError::io(path, e)),
                };
            }
            for (from, to) in renamed.iter().rev() {
                let _ = fs::rename(from, to);
            }
            for p in written.iter().rev().chain(staged_keys.iter()) {
                let _ = fs::remove_file(p);
            }
        }
        result
    }
}

/// A release checked by [`prepare_release`]: its version, target
/// directory, payload file names and signed custom data.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRelease {
    pub(crate) app: String,
    pub(crate) version: Version,
    pub(crate) dir: String,
    pub(crate) names: Vec<String>,
    pub(crate) custom: serde_json::Value,
}

impl PreparedRelease {
    /// The TUF target path of payload `name`.
    pub(crate) fn target_path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Refuses a release whose app and version `catalog` already offers.
    pub(crate) fn check_unpublished(&self, catalog: &Catalog) -> Result<(), ServerError> {
        if let Some(existing) = catalog.find(&self.app, &self.version) {
            return Err(ServerError::Invalid(format!(
                "{} {} is already published (channel {:?}); publish a new version instead",
                existing.app, existing.version, existing.channel
            )));
        }
        Ok(())
    }
}

/// Checks a release (app id, version, channel, install data, payload
/// names) before anything is read or written.
pub(crate) fn prepare_release(release: &NewRelease) -> Result<PreparedRelease, ServerError> {
    check_app_id(&release.app)?;
    let version: Version = release
        .version
        .parse()
        .map_err(|e| ServerError::Invalid(format!("invalid version {:?}: {e}", release.version)))?;
    if release.channel.chars().any(char::is_control) || release.channel.len() > 128 {
        return Err(ServerError::Invalid(format!(
            "invalid channel {:?}",
            release.channel
        )));
    }
    for (index, text) in &release.install_data {
        check_install_data_index(index)?;
        if text.len() > MAX_INSTALL_DATA_BYTES {
            return Err(ServerError::Invalid(format!(
                "install data {index:?} has {} bytes; at most {MAX_INSTALL_DATA_BYTES} are allowed",
                text.len()
            )));
        }
    }
    for (name, line) in &release.commands {
        if name.is_empty()
            || name.len() > 128
            || name.contains('=')
            || name.chars().any(char::is_control)
        {
            return Err(ServerError::Invalid(format!(
                "command name {name:?}: 1 to 128 characters without control characters or '='"
            )));
        }
        AppCommand::parse_release(line)
            .map_err(|e| ServerError::Invalid(format!("command {name:?}: {e}")))?;
    }
    if release.payloads.is_empty() {
        return Err(ServerError::Invalid("no payload file given".into()));
    }
    let mut names: Vec<String> = Vec::new();
    for p in &release.payloads {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ServerError::Invalid(format!("{}: no file name", p.display())))?;
        check_file_name(name)?;
        if names.iter().any(|n| n == name) {
            return Err(ServerError::Invalid(format!(
                "payload {name:?} given twice"
            )));
        }
        names.push(name.to_owned());
    }
    let mut custom = serde_json::json!({ "upkeep": {
        "app": release.app,
        "version": version.to_string(),
        "channel": release.channel,
        "installer_args": release.installer_args,
    }});
    if !release.install_data.is_empty() {
        custom["upkeep"]["install_data"] = serde_json::json!(release.install_data);
    }
    if !release.commands.is_empty() {
        custom["upkeep"]["commands"] = serde_json::json!(release.commands);
    }
    Ok(PreparedRelease {
        app: release.app.clone(),
        dir: release_dir(&release.app, &version),
        version,
        names,
        custom,
    })
}

/// Checks that a public URL is an absolute http(s) URL without query or
/// fragment.
pub fn check_public_url(url: &str) -> Result<(), ServerError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.contains(['?', '#', ' ', '"', '<', '>'])
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !ok {
        return Err(ServerError::Invalid(format!(
            "invalid public URL {url:?}: give an absolute http:// or https:// URL"
        )));
    }
    Ok(())
}

/// Copies `source` into `dir` as `<sha256>.<name>` (hashing while copying,
/// fsynced, renamed into place) and links it as `<name>`. Returns the
/// target description and both paths.
fn copy_payload(
    source: &Path,
    dir: &Path,
    name: &str,
) -> Result<(TargetFile, PathBuf, PathBuf), ServerError> {
    let mut input = fs::File::open(source).map_err(|e| ServerError::io(source, e))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let copy = upkeep_core::durable::copy_hashed(&mut input, &tmp);
    let (length, sha256) = match copy {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(ServerError::io(source, e));
        }
    };
    let hashed = dir.join(format!("{sha256}.{name}"));
    let plain = dir.join(name);
    let placed = fs::rename(&tmp, &hashed)
        .and_then(|()| match fs::remove_file(&plain) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .and_then(|()| {
            fs::hard_link(&hashed, &plain).or_else(|_| fs::copy(&hashed, &plain).map(|_| ()))
        })
        .and_then(|()| upkeep_core::durable::sync_dir(dir));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(ServerError::io(&hashed, e));
    }
    let file = TargetFile {
        length,
        hashes: BTreeMap::from([("sha256".to_owned(), sha256)]),
        custom: None,
        unrecognized: BTreeMap::new(),
    };
    Ok((file, hashed, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{DirTransport, client, payload, release};
    use sha2::Digest;
    use upkeep_core::tuf::metadata::{Envelope, Targets};
    use upkeep_core::tuf::{SystemClock, Updater, UpdaterConfig};

    #[test]
    fn init_add_and_the_tuf_client_accepts_the_result() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(
            &dir,
            &InitOptions {
                root_keys: 3,
                root_threshold: 2,
                ..InitOptions::default()
            },
        )
        .unwrap();
        for f in [
            "root-1.key",
            "root-3.key",
            "targets.key",
            "snapshot.key",
            "timestamp.key",
            "cup.pem",
        ] {
            assert!(dir.join("keys").join(f).is_file(), "{f}");
        }
        let config = fs::read_to_string(dir.join("client/config.toml")).unwrap();
        let config: toml::Table = toml::from_str(&config).unwrap();
        assert_eq!(config["server"].as_str(), Some(DEFAULT_SERVER_URL));
        assert_eq!(config["cup_key_id"].as_integer(), Some(1));

        let p = payload(tmp.path(), "setup.bin", b"version one");
        let published = repo
            .add(
                None,
                &NewRelease {
                    app: "{ABC-Def}".into(),
                    version: "1.0".into(),
                    channel: String::new(),
                    installer_args: vec!["--quiet".into()],
                    install_data: [("en".to_owned(), "{\"lang\":\"en\"}".to_owned())].into(),
                    commands: BTreeMap::new(),
                    delta_from: Vec::new(),
                    patch_format: None,
                    payloads: vec![p],
                },
            )
            .unwrap();
        assert_eq!(
            published,
            Published {
                targets: 2,
                snapshot: 2,
                timestamp: 2
            }
        );
        let hashed = format!(
            "targets/apps/{{abc-def}}/1.0/{}.setup.bin",
            hex::encode(sha2::Sha256::digest(b"version one"))
        );
        assert_eq!(fs::read(dir.join(hashed)).unwrap(), b"version one");
        assert_eq!(
            fs::read(dir.join("targets/apps/{abc-def}/1.0/setup.bin")).unwrap(),
            b"version one"
        );

        // The client, pinned to client/root.json, accepts the metadata and
        // downloads the target under its consistent name.
        let md = tmp.path().join("client-md");
        upkeep_core::tuf::init_trusted_root(&md, &fs::read(dir.join("client/root.json")).unwrap())
            .unwrap();
        let mut updater = Updater::new(
            &md,
            "repo://tuf/",
            DirTransport(dir.clone()),
            SystemClock,
            UpdaterConfig::default(),
        )
        .unwrap();
        updater.refresh().unwrap();
        let info = updater
            .get_target_info("apps/{abc-def}/1.0/setup.bin")
            .unwrap();
        assert_eq!(info.file.length, 11);
        assert_eq!(
            info.file.custom.as_ref().unwrap()["upkeep"]["app"],
            "{ABC-Def}"
        );
        let out = tmp.path().join("out.bin");
        let bytes = updater
            .download_target(&info, "repo://targets/", &out)
            .unwrap();
        assert_eq!(bytes, b"version one");

        let catalog = repo.catalog().unwrap();
        assert_eq!(catalog.releases().len(), 1);
        assert_eq!(catalog.releases()[0].installer_args, ["--quiet"]);
        assert_eq!(
            catalog.releases()[0].install_data["en"],
            "{\"lang\":\"en\"}"
        );
    }

    #[test]
    fn refused_additions_leave_the_metadata_intact() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(&dir, &InitOptions::default()).unwrap();
        let p = payload(tmp.path(), "app.bin", b"one");
        let release = NewRelease {
            app: "app".into(),
            version: "1".into(),
            channel: "beta".into(),
            installer_args: vec![],
            install_data: BTreeMap::new(),
            commands: BTreeMap::new(),
            delta_from: Vec::new(),
            patch_format: None,
            payloads: vec![p.clone()],
        };
        repo.add(None, &release).unwrap();
        let before = fs::read(dir.join("metadata/timestamp.json")).unwrap();
        // The same version again, a bad id, a bad file name, a missing file.
        assert!(repo.add(None, &release).is_err());
        let bad_id = NewRelease {
            app: "../x".into(),
            ..release.clone()
        };
        assert!(repo.add(None, &bad_id).is_err());
        let bad_name = NewRelease {
            version: "2".into(),
            payloads: vec![payload(tmp.path(), ".hidden", b"x")],
            ..release.clone()
        };
        assert!(repo.add(None, &bad_name).is_err());
        let missing = NewRelease {
            version: "3".into(),
            payloads: vec![tmp.path().join("nope.bin")],
            ..release.clone()
        };
        assert!(repo.add(None, &missing).is_err());
        let bad_index = NewRelease {
            version: "3".into(),
            install_data: [(String::new(), "x".to_owned())].into(),
            ..release.clone()
        };
        assert!(repo.add(None, &bad_index).is_err());
        let too_big = NewRelease {
            version: "3".into(),
            install_data: [("en".to_owned(), "x".repeat(MAX_INSTALL_DATA_BYTES + 1))].into(),
            ..release.clone()
        };
        assert!(repo.add(None, &too_big).is_err());
        // A failure while signing: a versioned file already in the way.
        fs::write(dir.join("metadata/3.targets.json"), b"{}").unwrap();
        let blocked = NewRelease {
            version: "4".into(),
            ..release.clone()
        };
        assert!(repo.add(None, &blocked).is_err());
        assert!(!dir.join("targets/apps/app/4/app.bin").exists());
        assert_eq!(
            fs::read(dir.join("metadata/timestamp.json")).unwrap(),
            before
        );
        assert_eq!(repo.catalog().unwrap().releases().len(), 1);
        // Without the targets key nothing is published.
        let other_keys = tmp.path().join("empty-keys");
        fs::create_dir(&other_keys).unwrap();
        let v5 = NewRelease {
            version: "5".into(),
            ..release
        };
        assert!(repo.add(Some(&other_keys), &v5).is_err());
        assert_eq!(
            fs::read(dir.join("metadata/timestamp.json")).unwrap(),
            before
        );
    }

    #[test]
    fn refresh_resigns_snapshot_and_timestamp_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(&dir, &InitOptions::default()).unwrap();
        let published = repo.refresh(None).unwrap();
        assert_eq!(
            published,
            Published {
                targets: 1,
                snapshot: 2,
                timestamp: 2
            }
        );
        assert!(repo.current().is_ok());
    }

    #[test]
    fn offline_keys_live_outside_the_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let keys = tmp.path().join("offline");
        let repo = Repo::init(
            &dir,
            &InitOptions {
                keys_dir: Some(keys.clone()),
                ..InitOptions::default()
            },
        )
        .unwrap();
        assert!(keys.join("root-1.key").is_file());
        assert!(!dir.join("keys").exists());
        assert_eq!(repo.keys_dir(None), std::path::absolute(&keys).unwrap());
        let bad = Repo::init(
            &tmp.path().join("r2"),
            &InitOptions {
                root_keys: 2,
                root_threshold: 3,
                ..InitOptions::default()
            },
        );
        assert!(bad.is_err());
    }

    #[test]
    fn rotating_each_role_keeps_clients_pinned_to_the_first_root_working() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(
            &dir,
            &InitOptions {
                root_keys: 2,
                root_threshold: 2,
                ..InitOptions::default()
            },
        )
        .unwrap();
        let pinned = fs::read(dir.join("client/root.json")).unwrap();
        let p = payload(tmp.path(), "app.bin", b"one");
        repo.add(None, &release("app", "1.0", p)).unwrap();
        // A client that follows every rotation as it happens.
        let steady_md = tmp.path().join("steady");
        client(&steady_md, &pinned, &dir).refresh().unwrap();

        let keys = dir.join("keys");
        for (n, role) in ["targets", "snapshot", "timestamp", "root"]
            .into_iter()
            .enumerate()
        {
            let before = repo.current().unwrap();
            let rotated = repo.rotate(None, role).unwrap();
            let after = repo.current().unwrap();
            let root_version = n as u64 + 2;
            assert_eq!(rotated.root_version, root_version);
            assert_eq!(after.root.version, root_version);
            assert_eq!(rotated.old_key_ids, before.root.roles[role].keyids);
            assert_eq!(rotated.new_key_ids, after.root.roles[role].keyids);
            let width = if role == "root" { 2 } else { 1 };
            assert_eq!(rotated.new_key_ids.len(), width);
            assert_eq!(after.root.roles[role].threshold, width as u64);
            for old in &rotated.old_key_ids {
                assert!(!rotated.new_key_ids.contains(old));
                assert!(!after.root.keys.contains_key(old), "{role}: {old} kept");
            }
            // The retired files are the old keys; the new files the new ones.
            assert_eq!(rotated.retired.len(), width);
            for (i, path) in rotated.retired.iter().enumerate() {
                let stem = if role == "root" {
                    format!("root-{}", i + 1)
                } else {
                    role.to_owned()
                };
                let expected = keys.join(format!("retired/{stem}.v{}.key", root_version - 1));
                assert_eq!(path, &expected);
                let old = keys::load_ed25519(path).unwrap();
                assert_eq!(old.key_id(), rotated.old_key_ids[i]);
                let new = keys::load_ed25519(&keys.join(format!("{stem}.key"))).unwrap();
                assert_eq!(new.key_id(), rotated.new_key_ids[i]);
            }
            let versioned = fs::read(dir.join(format!("metadata/{root_version}.root.json")));
            assert_eq!(
                versioned.unwrap(),
                fs::read(dir.join("metadata/root.json")).unwrap()
            );
            assert_eq!(
                fs::read(dir.join("client/root.json")).unwrap(),
                fs::read(dir.join("metadata/root.json")).unwrap()
            );
            // Targets 2 (the release) is re-signed as 3 by the targets
            // rotation, the first one; the others keep it.
            assert_eq!(rotated.published.targets, 3);
            assert!(rotated.published.timestamp > before.timestamp.version);
            assert!(
                keys.read_dir()
                    .unwrap()
                    .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".new") })
            );

            // The client that follows along, and a new one pinned to root 1.
            let mut steady = client(&steady_md, &pinned, &dir);
            steady.refresh().unwrap();
            assert_eq!(steady.trusted().root().version, root_version);
            steady.get_target_info("apps/app/1.0/app.bin").unwrap();
            let fresh_md = tmp.path().join(format!("fresh-{role}"));
            let mut fresh = client(&fresh_md, &pinned, &dir);
            fresh.refresh().unwrap();
            assert_eq!(fresh.trusted().root().version, root_version);
            fresh.get_target_info("apps/app/1.0/app.bin").unwrap();
        }

        // Publishing goes on with the new keys.
        let p = payload(tmp.path(), "app.bin", b"two");
        repo.add(None, &release("app", "2.0", p)).unwrap();
        let mut fresh = client(&tmp.path().join("last"), &pinned, &dir);
        fresh.refresh().unwrap();
        let info = fresh.get_target_info("apps/app/2.0/app.bin").unwrap();
        let bytes = fresh
            .download_target(&info, "repo://targets/", &tmp.path().join("two.bin"))
            .unwrap();
        assert_eq!(bytes, b"two");
        assert!(repo.rotate(None, "delegated").is_err());
    }

    #[test]
    fn targets_signed_by_the_retired_key_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(&dir, &InitOptions::default()).unwrap();
        let pinned = fs::read(dir.join("client/root.json")).unwrap();
        let p = payload(tmp.path(), "app.bin", b"one");
        repo.add(None, &release("app", "1.0", p)).unwrap();
        let old_targets = fs::read(dir.join("metadata/2.targets.json")).unwrap();
        let steady_md = tmp.path().join("steady");
        client(&steady_md, &pinned, &dir).refresh().unwrap();

        let rotated = repo.rotate(None, "targets").unwrap();
        assert_eq!(rotated.root_version, 2);
        // Before the rotation a client accepted targets 2; the repository
        // re-signed the same targets as version 3 with the new key.
        assert_eq!(rotated.published.targets, 3);
        let mut steady = client(&steady_md, &pinned, &dir);
        steady.refresh().unwrap();

        // Whoever holds the retired targets key (and the online keys)
        // publishes targets signed by it: a new version listing an evil
        // release, in correctly signed snapshot and timestamp.
        let retired = keys::load_ed25519(&rotated.retired[0]).unwrap();
        let keys = dir.join("keys");
        let snapshot = keys::load_ed25519(&keys.join("snapshot.key")).unwrap();
        let timestamp = keys::load_ed25519(&keys.join("timestamp.key")).unwrap();
        let current = repo.current().unwrap();
        let mut evil = Envelope::<Targets>::from_bytes(&old_targets, "2.targets.json")
            .unwrap()
            .signed;
        let file = current.targets.targets["apps/app/1.0/app.bin"].clone();
        evil.targets.insert("apps/app/6.6/app.bin".into(), file);
        let mut written = Vec::new();
        let mut publication = repo.publication(&current);
        publication
            .stage_targets("targets", evil, &[&retired], &mut written)
            .unwrap();
        publication
            .publish(&snapshot, &timestamp, &mut written)
            .unwrap();

        for md in [steady_md, tmp.path().join("fresh")] {
            let mut c = client(&md, &pinned, &dir);
            let err = c.refresh().unwrap_err().to_string();
            assert!(err.contains("targets.json"), "{err}");
            assert!(err.contains("signature"), "{err}");
            assert_eq!(c.trusted().root().version, 2);
            assert!(c.get_target_info("apps/app/6.6/app.bin").is_err());
        }
        // So is the old targets file itself, served again as the newest.
        let md = dir.join("metadata");
        fs::write(md.join("4.targets.json"), &old_targets).unwrap();
        let mut c = client(&tmp.path().join("fresh2"), &pinned, &dir);
        assert!(c.refresh().is_err());
    }

    #[test]
    fn a_failed_rotation_leaves_metadata_and_keys_intact() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(&dir, &InitOptions::default()).unwrap();
        let tree = |d: &Path| -> BTreeMap<String, Vec<u8>> {
            walk(d)
                .into_iter()
                .map(|p| {
                    let rel = p.strip_prefix(d).unwrap().to_string_lossy().into_owned();
                    (rel, fs::read(&p).unwrap())
                })
                .collect()
        };
        // A versioned snapshot in the way: signing fails after the new root
        // and keys were made.
        fs::write(dir.join("metadata/2.snapshot.json"), b"{}").unwrap();
        let before = tree(&dir);
        for role in ["root", "targets", "snapshot", "timestamp"] {
            assert!(repo.rotate(None, role).is_err(), "{role}");
            assert_eq!(tree(&dir), before, "{role}");
        }
        fs::remove_file(dir.join("metadata/2.snapshot.json")).unwrap();
        // A failure after the commit point (the client bundle cannot be
        // written) puts timestamp.json, root.json and the keys back.
        let before = tree(&dir);
        fs::remove_file(dir.join("client/root.json")).unwrap();
        fs::create_dir(dir.join("client/root.json")).unwrap();
        fs::write(dir.join("client/root.json/x"), b"").unwrap();
        let mut blocked = before.clone();
        blocked.remove("client/root.json");
        blocked.insert("client/root.json/x".into(), Vec::new());
        assert!(repo.rotate(None, "root").is_err());
        assert_eq!(tree(&dir), blocked);
        fs::remove_dir_all(dir.join("client/root.json")).unwrap();
        fs::write(dir.join("client/root.json"), &before["client/root.json"]).unwrap();
        // Without the root key nothing happens either.
        let before = tree(&dir);
        let other = tmp.path().join("other-keys");
        fs::create_dir(&other).unwrap();
        fs::copy(dir.join("keys/snapshot.key"), other.join("snapshot.key")).unwrap();
        fs::copy(dir.join("keys/timestamp.key"), other.join("timestamp.key")).unwrap();
        let err = repo.rotate(Some(&other), "targets").unwrap_err();
        assert!(err.to_string().contains("root key"), "{err}");
        assert_eq!(tree(&dir), before);
        // A lost targets key can be replaced.
        fs::remove_file(dir.join("keys/targets.key")).unwrap();
        let rotated = repo.rotate(None, "targets").unwrap();
        assert!(rotated.retired.is_empty());
        assert!(repo.current().is_ok());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
