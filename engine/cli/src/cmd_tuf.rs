//! `upkeep tuf`: the TUF client from the command line, following the
//! tuf-conformance client-under-test contract (`init`, `refresh`,
//! `download`; exit code 0 on full success, 1 otherwise).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use upkeep_core::tuf::{
    FetchError, SystemClock, Transport, Updater, UpdaterConfig, init_trusted_root, target_file_name,
};

/// Options of `upkeep tuf`.
#[derive(Debug, Args)]
pub struct TufArgs {
    /// Directory holding the trusted metadata (root.json, timestamp.json, ...).
    #[arg(long, value_name = "DIR")]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// Target path to download (repeat for several, fetched in order).
    #[arg(long = "target-name", value_name = "PATH")]
    target_names: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long, value_name = "URL")]
    target_base_url: Option<String>,
    /// Directory the verified targets are written to.
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: TufAction,
}

#[derive(Debug, Subcommand)]
enum TufAction {
    /// Store ROOT_FILE as the trusted root (no network).
    Init {
        /// The initial trusted root.json.
        root_file: PathBuf,
    },
    /// Update the top-level metadata from the repository.
    Refresh,
    /// Refresh, then download and verify each --target-name.
    Download,
}

/// Runs `upkeep tuf`.
pub fn run(args: TufArgs) -> Result<()> {
    match &args.action {
        TufAction::Init { root_file } => {
            let bytes = std::fs::read(root_file)
                .with_context(|| format!("reading {}", root_file.display()))?;
            init_trusted_root(&args.metadata_dir, &bytes)?;
            tracing::info!(dir = %args.metadata_dir.display(), "trusted root stored");
            Ok(())
        }
        TufAction::Refresh => {
            refreshed(&args)?;
            Ok(())
        }
        TufAction::Download => {
            let Some(base) = args.target_base_url.as_deref() else {
                bail!("download needs --target-base-url")
            };
            let Some(target_dir) = args.target_dir.as_deref() else {
                bail!("download needs --target-dir")
            };
            if args.target_names.is_empty() {
                bail!("download needs at least one --target-name");
            }
            let mut updater = refreshed(&args)?;
            std::fs::create_dir_all(target_dir)
                .with_context(|| format!("creating {}", target_dir.display()))?;
            for name in &args.target_names {
                let info = updater.get_target_info(name)?;
                let dest = target_dir.join(target_file_name(&info.path));
                if updater.find_cached_target(&info, &dest) {
                    tracing::info!(target = %name, "already downloaded");
                    continue;
                }
                updater.download_target(&info, base, &dest)?;
                tracing::info!(target = %name, file = %dest.display(), "downloaded");
            }
            Ok(())
        }
    }
}

fn refreshed(args: &TufArgs) -> Result<Updater<HttpTransport, SystemClock>> {
    let Some(url) = args.metadata_url.as_deref() else {
        bail!("this command needs --metadata-url")
    };
    let mut updater = Updater::new(
        &args.metadata_dir,
        url,
        HttpTransport::new()?,
        SystemClock,
        UpdaterConfig::default(),
    )?;
    updater.refresh()?;
    Ok(updater)
}

/// Fetches over HTTP(S), reading at most the allowed length.
#[derive(Debug)]
struct HttpTransport {
    client: reqwest::blocking::Client,
}

impl HttpTransport {
    fn new() -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client")?;
        Ok(HttpTransport { client })
    }
}

impl Transport for HttpTransport {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let resp = self
            .client
            .get(url)
            .send()
            .map_err(|e| FetchError::Other(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Err(FetchError::NotFound);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLong { max_len });
        }
        let mut body = Vec::new();
        resp.take(max_len.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Other(e.to_string()))?;
        if body.len() as u64 > max_len {
            return Err(FetchError::TooLong { max_len });
        }
        Ok(body)
    }
}
