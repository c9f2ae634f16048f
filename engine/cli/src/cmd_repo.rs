//! `upkeep repo`: create, publish to and serve update repositories.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use upkeep_core::tuf::Signer;
use upkeep_core::tuf::metadata::TOP_LEVEL_ROLES;
use upkeep_server::EventsUrl;
use upkeep_server::delegation::{DelegateOptions, RoleKeysChanged};
use upkeep_server::http::{ServeOptions, serve_blocking};
use upkeep_server::repo::{InitOptions, Repo};

/// Options of `upkeep repo`.
#[derive(Debug, Args)]
pub struct RepoArgs {
    #[command(subcommand)]
    action: RepoAction,
}

#[derive(Debug, Subcommand)]
enum RepoAction {
    /// Create a repository: keys, signed TUF metadata (version 1 of every
    /// role) and the client trust bundle in DIR/client/.
    ///
    /// DIR must not exist or be empty. Keys go to DIR/keys/ unless --keys
    /// names another directory (keep the root and targets keys offline
    /// there; `repo serve` needs only cup.pem, `repo refresh` snapshot.key
    /// and timestamp.key).
    Init(InitArgs),
    /// Publish a release: copy the payload files into DIR/targets/, list
    /// them in the targets metadata and re-sign targets, snapshot and
    /// timestamp.
    ///
    /// Needs targets.key, snapshot.key and timestamp.key. With --role ROLE
    /// the release goes into that delegated role instead, signed with the
    /// role's key (--role-key) in place of targets.key; a release path the
    /// role is not trusted for is refused before anything is written. A
    /// failure leaves the published metadata as it was.
    #[command(disable_version_flag = true)]
    Add(crate::cmd_repo_add::AddArgs),
    /// List the published releases: apps, versions, channels, rollouts,
    /// files with sizes and SHA-256.
    List(crate::cmd_repo_show::ListArgs),
    /// Write an offline folder of a release for `install --offline-dir`:
    /// its files (checked against the signed metadata) and
    /// OfflineManifest.gup, whole or not at all.
    Offline(crate::cmd_repo_offline::OfflineArgs),
    /// Run the reference update server (Omaha 3.0 XML, 3.1 and 4.0 JSON with
    /// CUP signatures; the repository's files) until SIGINT or SIGTERM.
    ///
    /// Prints `listening on http://ADDRESS` on standard output once the
    /// socket is bound. Needs only the CUP key (cup.pem).
    Serve(ServeArgs),
    /// Print the pings and events clients sent to the server.
    Events(crate::cmd_repo_show::EventsArgs),
    /// Stage a release: offer it to a share of the machines (--percent),
    /// pause or resume its rollout, or print where it stands.
    ///
    /// Every machine has a stable bucket per app (kept by the client as its
    /// Omaha cohort), so raising the percentage only adds machines, and
    /// every server instance sharing DIR places a machine alike. Machines
    /// outside the share are offered the newest release below it that is
    /// offered to them. The state is DIR/rollouts.json; servers pick up a
    /// change with their next request.
    #[command(disable_version_flag = true)]
    Rollout(crate::cmd_rollout::RolloutArgs),
    /// Pull a bad release: it is offered to no machine from now on, and
    /// machines that have it are offered the newest good release below it
    /// when their update check allows a rollback (rollback_allowed).
    #[command(disable_version_flag = true)]
    Pull(crate::cmd_rollout::PullArgs),
    /// Rollout statistics from the event store: per app and version, the
    /// machines seen, successful installs and updates, failures by error
    /// code.
    Stats(crate::cmd_repo_stats::StatsArgs),
    /// Re-sign snapshot and timestamp with fresh expiry dates (run it
    /// regularly, e.g. daily, where the online keys are).
    ///
    /// With --role ROLE, also re-sign that delegated role (and its hashed
    /// bins) unchanged with a fresh expiry date, with the role's key: a
    /// team runs it when its role would expire before its next release.
    Refresh(RefreshArgs),
    /// Replace the key of a TUF role with a fresh one: a top-level role
    /// (root, targets, snapshot or timestamp) in a new root version, or a
    /// delegated role in a new version of its delegator.
    ///
    /// Top-level: writes metadata/<N+1>.root.json listing the new key
    /// instead of the old one, signed by the current root keys (and by the
    /// new ones when rotating root), then re-signs snapshot and timestamp
    /// (and targets after a targets rotation). The old key file moves to
    /// KEYDIR/retired/<name>.v<N>.key. Needs the root keys, snapshot.key
    /// and timestamp.key.
    ///
    /// Delegated role: generates as many keys as the role had (or takes the
    /// team's new --public-key), re-signs the delegator listing them and,
    /// with generated keys, the role itself. Whatever the old keys signed is
    /// refused by clients from then on; other roles are unaffected. Old key
    /// files move to KEYDIR/retired/delegated/. Needs the delegator's key,
    /// snapshot.key and timestamp.key.
    ///
    /// A failure leaves metadata and keys as they were.
    Rotate(RotateArgs),
    /// Delegate release paths to a new targets role, so a team signs its
    /// own apps with its own key.
    ///
    /// The role is trusted only for the --paths patterns (TUF shell-style
    /// patterns matched per `/` component against release files
    /// apps/<app id, lower case>/<version>/<file>, e.g.
    /// 'apps/org.team-a.*/*/*'). Keys: --keys N fresh ed25519 keys written
    /// to KEYDIR/delegated/ROLE-<i>.key (give them to the team), or the
    /// team's --public-key (it keeps the private key; see `repo keygen`).
    /// The delegator (the top-level targets, or --parent ROLE for a nested
    /// delegation) is re-signed with the new delegation; its key, plus
    /// snapshot.key and timestamp.key, are needed. --terminating: clients
    /// stop searching at this role for the paths it covers. --bins N splits
    /// the role into N hashed bins (for repositories with many apps).
    Delegate(DelegateArgs),
    /// Revoke a delegated role: re-sign its delegator without it, so
    /// clients no longer trust anything it signs. Its key files move to
    /// KEYDIR/retired/delegated/.
    Undelegate(UndelegateArgs),
    /// List the delegated roles in search order: delegator, paths or hash
    /// prefixes, keys, threshold, terminating, metadata version.
    Roles(RolesArgs),
    /// Generate an ed25519 key file (mode 0600) and print its public key,
    /// for `repo delegate --public-key` / `repo rotate --public-key`; keep
    /// the file and publish with `repo add --role ROLE --role-key FILE`.
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The repository directory to create.
    dir: PathBuf,
    /// Write the keys here instead of DIR/keys/.
    #[arg(long, value_name = "KEYDIR")]
    keys: Option<PathBuf>,
    /// Number of root keys.
    #[arg(long, value_name = "N", default_value_t = 1)]
    root_keys: usize,
    /// Root keys needed to sign a new root.
    #[arg(long, value_name = "K", default_value_t = 1)]
    root_threshold: u64,
    /// The server's public base URL (written to DIR/client/config.toml and
    /// used for download URLs).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The CUP key id clients pin.
    #[arg(long, value_name = "ID", default_value_t = 1)]
    cup_key_id: u32,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The public base URL for download URLs (default: repo.toml's, else
    /// http://<Host header>).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Where cup.pem is (default: the repository's key directory).
    #[arg(long, value_name = "KEYDIR")]
    keys: Option<PathBuf>,
    /// The event store: postgres://USER@HOST:PORT/DATABASE (shared by
    /// several servers) or sqlite:PATH (default: DIR/events.sqlite).
    #[arg(long, value_name = "URL")]
    events: Option<EventsUrl>,
    /// A file whose first line is the dashboard's access token (required
    /// with Authorization: Bearer TOKEN or ?token=TOKEN). Without it the
    /// dashboard (/dashboard) is served only on a loopback --listen.
    #[arg(long, value_name = "FILE")]
    dashboard_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RefreshArgs {
    /// The repository directory.
    dir: PathBuf,
    /// Where snapshot.key and timestamp.key are (default: the repository's
    /// key directory).
    #[arg(long, value_name = "KEYDIR")]
    keys: Option<PathBuf>,
    /// Also re-sign this delegated role (and its hashed bins) unchanged
    /// with a fresh expiry date, with the role's key.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// A key file of the role (default: KEYDIR/delegated/ROLE-<i>.key).
    #[arg(long = "role-key", value_name = "FILE", requires = "role")]
    role_keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The role whose key is replaced: root, targets, snapshot, timestamp
    /// or a delegated role.
    #[arg(long, value_name = "ROLE")]
    role: String,
    /// The key directory (default: the one `repo init` used).
    #[arg(long, visible_alias = "keys-dir", value_name = "KEYDIR")]
    keys: Option<PathBuf>,
    /// Delegated role only: the team's new ed25519 public key (hex; repeat
    /// for several) instead of generated keys.
    #[arg(long = "public-key", value_name = "HEX")]
    public_keys: Vec<String>,
    /// Delegated role only: a key file of its delegator when that is a
    /// delegated role (default: KEYDIR/delegated/PARENT-<i>.key).
    #[arg(long = "parent-key", value_name = "FILE")]
    parent_keys: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct DelegateArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The new role's name (a-z 0-9 . _ -).
    #[arg(long, value_name = "ROLE")]
    name: String,
    /// A path pattern the role is trusted for (repeat for several), e.g.
    /// 'apps/org.team-a.*/*/*'.
    #[arg(long = "paths", value_name = "PATTERN", required = true, num_args = 1..)]
    paths: Vec<String>,
    /// How many fresh keys to generate for the role.
    #[arg(long = "keys", value_name = "N", default_value_t = 1)]
    key_count: usize,
    /// How many of the role's keys must sign.
    #[arg(long, value_name = "T", default_value_t = 1)]
    threshold: u64,
    /// The team's ed25519 public key (hex, from `repo keygen`; repeat for
    /// several) instead of generated keys.
    #[arg(long = "public-key", value_name = "HEX", conflicts_with = "bins")]
    public_keys: Vec<String>,
    /// Stop the clients' search at this role for the paths it covers.
    #[arg(long)]
    terminating: bool,
    /// Delegate from this role (a nested delegation) instead of the
    /// top-level targets.
    #[arg(long, value_name = "ROLE", default_value = "targets")]
    parent: String,
    /// A key file of the parent role (default: KEYDIR/delegated/PARENT-<i>.key).
    #[arg(long = "parent-key", value_name = "FILE")]
    parent_keys: Vec<PathBuf>,
    /// Split the role into N hashed bins (a power of two, 2 to 4096):
    /// `repo add --role ROLE` puts each file in the bin of its path's hash.
    #[arg(long, value_name = "N")]
    bins: Option<u32>,
    /// The key directory (default: the one `repo init` used).
    #[arg(long = "keys-dir", value_name = "KEYDIR")]
    keys_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct UndelegateArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The delegated role to revoke.
    #[arg(long, value_name = "ROLE")]
    name: String,
    /// A key file of its delegator when that is a delegated role.
    #[arg(long = "parent-key", value_name = "FILE")]
    parent_keys: Vec<PathBuf>,
    /// The key directory (default: the one `repo init` used).
    #[arg(long, visible_alias = "keys-dir", value_name = "KEYDIR")]
    keys: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RolesArgs {
    /// The repository directory.
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The key file to create (never overwritten).
    file: PathBuf,
}

pub(crate) fn open(dir: &Path) -> Result<Repo> {
    Repo::open(dir).with_context(|| format!("opening repository {}", dir.display()))
}

/// Runs `upkeep repo`.
pub fn run(args: RepoArgs) -> Result<()> {
    match args.action {
        RepoAction::Init(a) => init(a),
        RepoAction::Add(a) => crate::cmd_repo_add::run(a),
        RepoAction::List(a) => crate::cmd_repo_show::list(a),
        RepoAction::Offline(a) => crate::cmd_repo_offline::run(a),
        RepoAction::Serve(a) => serve(a),
        RepoAction::Events(a) => crate::cmd_repo_show::events(a),
        RepoAction::Rollout(a) => crate::cmd_rollout::rollout(a),
        RepoAction::Pull(a) => crate::cmd_rollout::pull(a),
        RepoAction::Stats(a) => crate::cmd_repo_stats::run(a),
        RepoAction::Refresh(a) => {
            let repo = open(&a.dir)?;
            let p = match &a.role {
                Some(role) => repo
                    .refresh_role(a.keys.as_deref(), role, &a.role_keys)
                    .with_context(|| format!("re-signing {role}"))?,
                None => repo
                    .refresh(a.keys.as_deref())
                    .context("re-signing snapshot and timestamp")?,
            };
            if let Some(role) = &a.role {
                println!("{role} re-signed");
            }
            println!(
                "snapshot {} and timestamp {} signed",
                p.snapshot, p.timestamp
            );
            Ok(())
        }
        RepoAction::Rotate(a) => rotate(a),
        RepoAction::Delegate(a) => delegate(a),
        RepoAction::Undelegate(a) => undelegate(a),
        RepoAction::Roles(a) => roles(a),
        RepoAction::Keygen(a) => {
            let signer = upkeep_server::keys::generate_ed25519(&a.file)
                .with_context(|| format!("creating {}", a.file.display()))?;
            println!("public key {}", signer.public_key().keyval.public);
            println!("key id {}", signer.key_id());
            Ok(())
        }
    }
}

fn delegate(a: DelegateArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let options = DelegateOptions {
        name: a.name,
        parent: a.parent,
        paths: a.paths,
        terminating: a.terminating,
        keys: a.key_count,
        threshold: a.threshold,
        public_keys: a.public_keys,
        bins: a.bins,
        parent_keys: a.parent_keys,
    };
    let d = repo
        .delegate(a.keys_dir.as_deref(), &options)
        .with_context(|| format!("delegating to {}", options.name))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "delegated {} from {}", d.role, d.parent)?;
    for id in &d.key_ids {
        writeln!(out, "  key {id}")?;
    }
    for f in &d.key_files {
        writeln!(out, "  key file: {}", f.display())?;
    }
    if !d.bins.is_empty() {
        writeln!(out, "  {} hashed bins", d.bins.len())?;
    }
    writeln!(
        out,
        "targets {}, snapshot {}, timestamp {}",
        d.published.targets, d.published.snapshot, d.published.timestamp
    )?;
    Ok(())
}

fn print_role_change(r: &RoleKeysChanged) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (i, old) in r.old_key_ids.iter().enumerate() {
        let new = r.new_key_ids.get(i).map_or("(revoked)", String::as_str);
        writeln!(out, "{} key {old} -> {new}", r.role)?;
    }
    writeln!(
        out,
        "{} re-signed; snapshot {}, timestamp {}",
        r.parent, r.published.snapshot, r.published.timestamp
    )?;
    if !r.new_key_ids.is_empty() && !r.resigned {
        writeln!(
            out,
            "{} is not trusted until it publishes signed with its new key",
            r.role
        )?;
    }
    for f in &r.key_files {
        writeln!(out, "key file: {}", f.display())?;
    }
    for f in &r.retired {
        writeln!(out, "retired key file: {}", f.display())?;
    }
    Ok(())
}

fn undelegate(a: UndelegateArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let r = repo
        .undelegate(a.keys.as_deref(), &a.name, &a.parent_keys)
        .with_context(|| format!("revoking {}", a.name))?;
    print_role_change(&r)
}

fn roles(a: RolesArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let current = repo.current().context("reading the metadata")?;
    let list = current.delegations();
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(out, "no delegations")?;
    }
    for d in &list {
        let indent = "  ".repeat(d.depth - 1);
        let scope = match (&d.paths, &d.path_hash_prefixes) {
            (Some(p), _) => format!("paths {p:?}"),
            (None, Some(h)) => format!("hash prefixes {h:?}"),
            (None, None) => "nothing".to_owned(),
        };
        let version = d.version.map_or_else(
            || "not published yet".to_owned(),
            |v| format!("version {v}"),
        );
        writeln!(
            out,
            "{indent}{} (from {})  {scope}  {} of {} key(s){}  {version}, {} target(s)",
            d.role,
            d.delegator,
            d.threshold,
            d.keyids.len(),
            if d.terminating { "  terminating" } else { "" },
            d.targets
        )?;
    }
    Ok(())
}

fn rotate(a: RotateArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    if !TOP_LEVEL_ROLES.contains(&a.role.as_str()) {
        let r = repo
            .rotate_role(a.keys.as_deref(), &a.role, &a.public_keys, &a.parent_keys)
            .with_context(|| format!("rotating the keys of {}", a.role))?;
        return print_role_change(&r);
    }
    if !a.public_keys.is_empty() || !a.parent_keys.is_empty() {
        bail!("--public-key and --parent-key apply to delegated roles only");
    }
    let r = repo
        .rotate(a.keys.as_deref(), &a.role)
        .with_context(|| format!("rotating the {} key", a.role))?;
    let mut out = std::io::stdout().lock();
    for (i, new) in r.new_key_ids.iter().enumerate() {
        let old = r.old_key_ids.get(i).map_or("(none)", String::as_str);
        writeln!(out, "{} key {old} -> {new}", r.role)?;
    }
    writeln!(
        out,
        "root version {} published; targets {}, snapshot {}, timestamp {}",
        r.root_version, r.published.targets, r.published.snapshot, r.published.timestamp
    )?;
    for path in &r.retired {
        writeln!(out, "retired key file: {}", path.display())?;
    }
    Ok(())
}

fn init(a: InitArgs) -> Result<()> {
    let options = InitOptions {
        keys_dir: a.keys,
        root_keys: a.root_keys,
        root_threshold: a.root_threshold,
        public_url: a.public_url,
        cup_key_id: a.cup_key_id,
    };
    let repo = Repo::init(&a.dir, &options)
        .with_context(|| format!("creating repository {}", a.dir.display()))?;
    println!("repository created in {}", repo.dir().display());
    println!("keys: {}", repo.keys_dir(None).display());
    println!(
        "give clients: {}",
        repo.dir().join(upkeep_server::repo::CLIENT_DIR).display()
    );
    Ok(())
}

fn serve(a: ServeArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let options = ServeOptions {
        listen: a.listen,
        public_url: a.public_url,
        keys_dir: a.keys,
        events: a.events,
        dashboard_token: match &a.dashboard_token_file {
            Some(f) => Some(read_token(f)?),
            None => None,
        },
    };
    serve_blocking(&repo, &options, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
        tracing::info!(%addr, "serving {}", a.dir.display());
    })
    .with_context(|| format!("serving {}", a.dir.display()))
}

/// The first line of `file`, which must not be empty.
fn read_token(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the dashboard token {}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        bail!("the dashboard token file {} is empty", file.display());
    }
    Ok(token)
}
