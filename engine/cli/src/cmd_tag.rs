//! `upkeep tag`: read and write the installer tag appended to a copy of a
//! binary (`upkeep_core::tag`), so a vendor hands out one tagged
//! installer per app from one build.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use upkeep_core::tag::file::{read_tag, read_tag_text, write_tagged};
use upkeep_core::tag::{Tag, TagApp};

/// Read and write installer tags: what a tagged copy of upkeep installs.
///
/// A tag is one line of `key=value` pairs joined by `&`, as Omaha's
/// metainstaller takes it: `appguid` starts an app, and `appname`,
/// `needsadmin` (true, false or prefers), `ap`, `installdataindex`,
/// `experiments`, `untrusteddata` and `installerdata` after it belong to
/// that app; `brand`, `lang`, `iid`, `client`, `bundlename`, `usagestats`
/// and the other global keys may stand anywhere. Keys are case-insensitive,
/// values percent-decoded; keys upkeep does not know are kept and passed
/// on. A malformed tag is refused with the attribute and its byte offset.
///
/// Example:
///   upkeep tag write myapp-setup --tag 'appguid={8A69D345-D564-463C-AFF1-A69D9E530F96}&appname=My%20App&needsadmin=prefers&brand=GGLS'
///   upkeep tag read myapp-setup
#[derive(Debug, Args)]
pub struct TagArgs {
    #[command(subcommand)]
    command: TagCommand,
}

#[derive(Debug, Subcommand)]
enum TagCommand {
    /// Print the tag of a tagged binary: its apps and attributes as JSON.
    ///
    /// Exits 0 and prints the parsed tag when FILE has a valid one; 1 when
    /// it has none, its tag block is damaged or the tag is malformed.
    Read(ReadArgs),
    /// Write a tagged copy of a binary (by default this upkeep binary).
    ///
    /// The tag is checked before anything is written. OUTPUT is replaced
    /// atomically (a tag it already has is replaced, not added to), keeps
    /// the source's permissions, and is left as it was on any error.
    Write(WriteArgs),
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// The tagged file (default: this upkeep binary).
    file: Option<PathBuf>,
    /// Print the tag's text as it is stored instead of the parsed JSON.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
struct WriteArgs {
    /// Where to write the tagged copy (may be the source itself).
    output: PathBuf,
    /// The tag, e.g. 'appguid={...}&appname=My%20App&needsadmin=prefers'.
    #[arg(long)]
    tag: String,
    /// The binary to copy (default: this upkeep binary).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
}

/// Runs `upkeep tag`.
pub fn run(args: TagArgs) -> Result<()> {
    match args.command {
        TagCommand::Read(a) => read(a),
        TagCommand::Write(a) => write(a),
    }
}

fn this_binary() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find this upkeep binary")
}

fn read(args: ReadArgs) -> Result<()> {
    let file = match args.file {
        Some(f) => f,
        None => this_binary()?,
    };
    if args.raw {
        match read_tag_text(&file)? {
            Some(text) => println!("{text}"),
            None => bail!("{}: has no tag", file.display()),
        }
        return Ok(());
    }
    match read_tag(&file)? {
        Some(tag) => {
            println!("{}", serde_json::to_string_pretty(&tag_json(&tag))?);
            Ok(())
        }
        None => bail!("{}: has no tag", file.display()),
    }
}

fn write(args: WriteArgs) -> Result<()> {
    let source = match &args.from {
        Some(f) => f.clone(),
        None => this_binary()?,
    };
    if source.is_dir() {
        bail!("{}: is a directory, not a binary", source.display());
    }
    let tag = write_tagged(&source, &args.tag, &args.output)?;
    eprintln!(
        "wrote {} (a copy of {}) tagged for {}",
        args.output.display(),
        source.display(),
        apps_line(&tag)
    );
    Ok(())
}

fn apps_line(tag: &Tag) -> String {
    tag.apps
        .iter()
        .map(|a| match &a.appname {
            Some(name) => format!("{} ({name})", a.appid),
            None => a.appid.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `key: value` pairs with the absent ones left out.
fn fields<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<Value>)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
}

fn extra_json(extra: &[(String, String)]) -> Value {
    Value::Array(extra.iter().map(|(k, v)| json!([k, v])).collect())
}

fn app_json(app: &TagApp) -> Value {
    let mut o = fields([
        ("appguid", Some(json!(app.appid))),
        ("appname", app.appname.as_ref().map(|v| json!(v))),
        ("needsadmin", app.needsadmin.map(|v| json!(v.as_str()))),
        ("ap", app.ap.as_ref().map(|v| json!(v))),
        (
            "installdataindex",
            app.installdataindex.as_ref().map(|v| json!(v)),
        ),
        ("experiments", app.experiments.as_ref().map(|v| json!(v))),
        (
            "untrusteddata",
            app.untrusteddata.as_ref().map(|v| json!(v)),
        ),
        (
            "installerdata",
            app.installerdata.as_ref().map(|v| json!(v)),
        ),
    ]);
    if !app.extra.is_empty() {
        o.insert("extra".into(), extra_json(&app.extra));
    }
    Value::Object(o)
}

fn tag_json(tag: &Tag) -> Value {
    let mut o = fields([
        ("bundlename", tag.bundlename.as_ref().map(|v| json!(v))),
        ("iid", tag.iid.as_ref().map(|v| json!(v))),
        ("brand", tag.brand.as_ref().map(|v| json!(v))),
        ("client", tag.client.as_ref().map(|v| json!(v))),
        ("lang", tag.lang.as_ref().map(|v| json!(v))),
        ("usagestats", tag.usagestats.map(|v| json!(v))),
        (
            "omahaexperiments",
            tag.omahaexperiments.as_ref().map(|v| json!(v)),
        ),
        ("referral", tag.referral.as_ref().map(|v| json!(v))),
        ("browser", tag.browser.map(|v| json!(v))),
        ("flighting", tag.flighting.map(|v| json!(v))),
    ]);
    o.insert(
        "apps".into(),
        Value::Array(tag.apps.iter().map(app_json).collect()),
    );
    if !tag.extra.is_empty() {
        o.insert("extra".into(), extra_json(&tag.extra));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_every_attribute_given_and_no_other() {
        let tag = Tag::parse(
            "appguid={8A69D345-D564-463C-AFF1-A69D9E530F96}&appname=My%20App&needsadmin=prefers\
             &brand=GGLS&x-vendor=1&appguid=second&ap=beta",
        )
        .unwrap();
        let v = tag_json(&tag);
        assert_eq!(v["brand"], "GGLS");
        assert_eq!(v["apps"][0]["appname"], "My App");
        assert_eq!(v["apps"][0]["needsadmin"], "prefers");
        assert_eq!(v["apps"][0]["extra"], json!([["x-vendor", "1"]]));
        assert_eq!(v["apps"][1]["appguid"], "second");
        assert_eq!(v["apps"][1]["ap"], "beta");
        assert!(v.get("lang").is_none());
        assert!(v["apps"][1].get("appname").is_none());
        assert_eq!(
            apps_line(&tag),
            "{8A69D345-D564-463C-AFF1-A69D9E530F96} (My App), second"
        );
    }
}
