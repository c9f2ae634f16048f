//! `upkeep omaha`: operator tools for the Omaha update protocol.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use upkeep_core::omaha::{
    self, ActivityDays, ErrorCategory, Event, EventResult, EventType, Os, Protocol, RequestApp,
    RequestBuilder, UpdateCheckRequest,
};
use upkeep_core::version::Version;

/// Decode Omaha update-check responses and print the requests the engine sends.
///
/// Three dialects are understood: protocol 3.1 JSON, protocol 4.0 JSON
/// (Chromium's update_client) and 3.0 XML (offline `.gup` manifests,
/// Nebraska and other classic Omaha servers).
#[derive(Debug, Args)]
pub struct OmahaArgs {
    #[command(subcommand)]
    command: OmahaCommand,
}

#[derive(Debug, Subcommand)]
enum OmahaCommand {
    /// Parse an update-check response and print what it says as JSON.
    ///
    /// Prints, per app: id, status, cohort fields, the update check (status,
    /// next version, urls, packages or pipeline operations with sizes and
    /// hashes, run and arguments), data; and `app_errors`, the apps that were
    /// dropped because they were malformed. Exits 0 when the document parsed,
    /// even if some apps were dropped; 1 when it did not.
    ///
    /// Example: upkeep omaha decode --protocol 4.0 reply.json
    Decode(DecodeArgs),
    /// Print the update-check request the engine would send for some apps.
    ///
    /// Example: upkeep omaha request --protocol 4.0 --app '{8A69D345-D564-463C-AFF1-A69D9E530F96}:120.0.1' --channel beta
    Request(Box<RequestArgs>),
}

fn protocol_arg(s: &str) -> Result<Protocol, String> {
    s.parse::<Protocol>().map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// The dialect: 3.1, 4.0 or xml. Without it the dialect is detected
    /// (XML when the document starts with '<', else JSON by its "protocol").
    /// JSON must begin with the )]}' prefix either way.
    #[arg(long, value_parser = protocol_arg)]
    protocol: Option<Protocol>,
    /// The response file, or '-' for standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
struct RequestArgs {
    /// The dialect: 3.1, 4.0 or xml.
    #[arg(long, value_parser = protocol_arg)]
    protocol: Protocol,
    /// An app as ID:VERSION (the version has up to four numeric parts). Repeatable.
    #[arg(long = "app", value_name = "ID:VERSION", required = true)]
    apps: Vec<String>,
    /// The channel / additional parameters (`ap`) of every app.
    #[arg(long)]
    channel: Option<String>,
    /// The brand code of every app.
    #[arg(long)]
    brand: Option<String>,
    /// The language of every app.
    #[arg(long)]
    lang: Option<String>,
    /// The cohort of every app.
    #[arg(long)]
    cohort: Option<String>,
    /// The cohort hint of every app.
    #[arg(long)]
    cohorthint: Option<String>,
    /// The cohort name of every app.
    #[arg(long)]
    cohortname: Option<String>,
    /// The stored install date (days since 2007-01-01); omitted: this is the install request (-1).
    #[arg(long, allow_negative_numbers = true)]
    installdate: Option<i64>,
    /// The server day of the last roll call (daystart.elapsed_days of the last response).
    #[arg(long, value_name = "DAY")]
    last_rollcall: Option<i64>,
    /// The server day of the last active report.
    #[arg(long, value_name = "DAY")]
    last_active: Option<i64>,
    /// The apps were used since the last active report.
    #[arg(long)]
    active: bool,
    /// The current server day, to send day differences (`r`, `a`).
    #[arg(long, value_name = "DAY")]
    today: Option<i64>,
    /// Ask, but do not intend to apply an update.
    #[arg(long)]
    updatedisabled: bool,
    /// Only versions matching this component-wise prefix (e.g. "1.2.").
    #[arg(long, value_name = "PREFIX")]
    target_version_prefix: Option<String>,
    /// Accept a downgrade.
    #[arg(long)]
    rollback_allowed: bool,
    /// Send no update check (a ping or event report only).
    #[arg(long)]
    no_updatecheck: bool,
    /// An event report as TYPE:RESULT[:ERRORCAT:ERRORCODE], e.g. 3:1 (update, success). Repeatable.
    #[arg(long = "event", value_name = "TYPE:RESULT")]
    events: Vec<String>,
    /// An extra app attribute NAME=VALUE (e.g. track=stable for Nebraska). Repeatable.
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    attrs: Vec<String>,
    /// Why the request is made (e.g. ondemand, scheduler).
    #[arg(long)]
    installsource: Option<String>,
    /// The updater's name.
    #[arg(long, default_value = "upkeep")]
    updater: String,
    /// The updater's version.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    updater_version: String,
    /// The operating system platform (default: this machine's).
    #[arg(long, default_value = std::env::consts::OS)]
    os_platform: String,
    /// The architecture (default: this machine's).
    #[arg(long, default_value = std::env::consts::ARCH)]
    os_arch: String,
    /// Reuse this session id instead of a fresh random one.
    #[arg(long)]
    sessionid: Option<String>,
}

/// Runs `upkeep omaha ...`. A failure comes back as an error, which the
/// binary prints on stderr in one line (with its causes) and exits 1.
pub fn run(args: OmahaArgs) -> Result<()> {
    match args.command {
        OmahaCommand::Decode(a) => decode(a),
        OmahaCommand::Request(a) => request(*a),
    }
}

fn decode(args: DecodeArgs) -> Result<()> {
    let name = args.file.display().to_string();
    let body = if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(&args.file).with_context(|| format!("cannot read {name}"))?
    };
    let parsed = match args.protocol {
        Some(p) => omaha::parse_response(&body, p)
            .with_context(|| format!("{name} is not a valid {p} response")),
        None => omaha::parse_response_any(&body)
            .with_context(|| format!("{name} is not a valid Omaha response")),
    };
    let response = parsed?;
    tracing::info!(
        apps = response.apps.len(),
        dropped = response.app_errors.len(),
        "decoded {name}"
    );
    let mut out = serde_json::to_value(&response).context("cannot render the response")?;
    if let Some(days) = response.daystart.elapsed_days {
        out["daystart"]["date"] = json!(omaha::date_of_elapsed_days(days));
    }
    if let Some(apps) = out["apps"].as_array_mut() {
        for (value, app) in apps.iter_mut().zip(&response.apps) {
            value["result_status"] = json!(app.result_status());
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Splits `--app ID:VERSION` at its last colon (ids may contain colons).
fn split_app(text: &str) -> Result<(&str, &str)> {
    text.rsplit_once(':')
        .filter(|(id, version)| !id.is_empty() && !version.is_empty())
        .with_context(|| format!("--app {text:?} is not of the form ID:VERSION"))
}

fn parse_event(text: &str) -> Result<Event> {
    let parts: Vec<&str> = text.split(':').collect();
    let num = |i: usize, what: &str| -> Result<i64> {
        parts[i]
            .trim()
            .parse()
            .with_context(|| format!("event {text:?}: {what} {:?} is not a number", parts[i]))
    };
    if !matches!(parts.len(), 2 | 4) {
        bail!("event {text:?} is not of the form TYPE:RESULT or TYPE:RESULT:ERRORCAT:ERRORCODE");
    }
    let mut event = Event::new(
        EventType::from_code(num(0, "type")?),
        EventResult::from_code(num(1, "result")?),
    );
    if parts.len() == 4 {
        event.errorcat = Some(ErrorCategory::from_code(num(2, "error category")?));
        event.errorcode = Some(num(3, "error code")?);
    }
    Ok(event)
}

fn request(args: RequestArgs) -> Result<()> {
    let days = ActivityDays {
        last_roll_call: args.last_rollcall,
        last_active: args.last_active,
        active_since: args.active,
        install_date: args.installdate,
    };
    let events = args
        .events
        .iter()
        .map(|e| parse_event(e))
        .collect::<Result<Vec<_>>>()?;
    let mut extra = std::collections::BTreeMap::new();
    for attr in &args.attrs {
        let (k, v) = attr
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .with_context(|| format!("attribute {attr:?} is not NAME=VALUE"))?;
        extra.insert(k.to_owned(), v.to_owned());
    }
    let mut builder = RequestBuilder::new(args.protocol)
        .updater(&args.updater, &args.updater_version)
        .os(Os {
            platform: Some(args.os_platform.clone()),
            arch: Some(args.os_arch.clone()),
            ..Os::default()
        });
    if let Some(source) = &args.installsource {
        builder = builder.installsource(source);
    }
    if let Some(id) = &args.sessionid {
        builder = builder.sessionid(id);
    }
    for spec in &args.apps {
        let (id, version) = split_app(spec)?;
        let version: Version = version
            .parse()
            .with_context(|| format!("--app {spec:?}: bad version"))?;
        let mut app = RequestApp::new(id, &version);
        app.ap = args.channel.clone();
        app.brand = args.brand.clone();
        app.lang = args.lang.clone();
        app.installsource = args.installsource.clone();
        app.installdate = Some(days.install_date_to_send());
        app.cohort.cohort = args.cohort.clone();
        app.cohort.cohorthint = args.cohorthint.clone();
        app.cohort.cohortname = args.cohortname.clone();
        app.ping = Some(days.ping(args.today));
        app.updatecheck = (!args.no_updatecheck).then(|| UpdateCheckRequest {
            updatedisabled: args.updatedisabled,
            targetversionprefix: args.target_version_prefix.clone(),
            rollback_allowed: args.rollback_allowed,
            sameversionupdate: false,
        });
        app.events = events.clone();
        app.extra = extra.clone();
        builder = builder.app(app);
    }
    let request = builder
        .build()
        .context("cannot generate random session and request ids")?;
    let body = request.to_body();
    if args.protocol == Protocol::Xml30 {
        print!("{body}");
    } else {
        let value: Value = serde_json::from_str(&body)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}
