//! End-to-end tests of `upkeep tag read|write` with the real binary: a
//! tagged copy of upkeep that still runs and reads its own tag, refusals
//! that leave files as they were, and a closed standard output.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;
use support::{upkeep, upkeep_bin};

const CHROME: &str = "{8A69D345-D564-463C-AFF1-A69D9E530F96}";

fn run(args: &[&str]) -> Output {
    upkeep().args(args).output().expect("run upkeep")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `upkeep tag write DEST --from SOURCE --tag TAG`.
fn write_tag(dest: &Path, source: &Path, tag: &str) -> Output {
    run(&[
        "tag",
        "write",
        path(dest),
        "--from",
        path(source),
        "--tag",
        tag,
    ])
}

#[test]
fn a_tagged_copy_of_upkeep_runs_and_reads_its_own_tag() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = dir.path().join("myapp-setup");
    let tag = format!(
        "appguid={CHROME}&appname=My%20App&needsadmin=prefers&ap=beta&installdataindex=default\
         &brand=GGLS&lang=en&x-vendor=kept"
    );
    let out = run(&["tag", "write", path(&tagged), "--tag", &tag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("tagged for"), "{}", stderr(&out));

    // The copy is the binary plus the tag block: it still runs, and with no
    // FILE `tag read` reads the binary it runs from.
    let original = std::fs::metadata(upkeep_bin()).unwrap();
    let copy = std::fs::metadata(&tagged).unwrap();
    assert!(copy.len() > original.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(copy.permissions().mode(), original.permissions().mode());
    }
    let out = std::process::Command::new(&tagged)
        .args(["tag", "read"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["brand"], "GGLS");
    assert_eq!(v["lang"], "en");
    let app = &v["apps"][0];
    assert_eq!(app["appguid"], CHROME);
    assert_eq!(app["appname"], "My App");
    assert_eq!(app["needsadmin"], "prefers");
    assert_eq!(app["ap"], "beta");
    assert_eq!(app["installdataindex"], "default");
    assert_eq!(app["extra"], serde_json::json!([["x-vendor", "kept"]]));

    // The untagged binary has none.
    let out = run(&["tag", "read"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no tag"), "{}", stderr(&out));
}

#[test]
fn rewriting_replaces_the_tag_and_raw_prints_it_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("setup.bin");
    std::fs::write(&base, b"not really a binary").unwrap();
    let out = write_tag(&base, &base, "appguid=first&brand=AAAA");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = write_tag(&base, &base, "APPGUID=second&APPNAME=Two&appguid=third");
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&run(&["tag", "read", path(&base)]));
    assert!(v.get("brand").is_none(), "the old tag is gone: {v}");
    assert_eq!(v["apps"].as_array().unwrap().len(), 2);
    assert_eq!(v["apps"][0]["appguid"], "second");
    assert_eq!(v["apps"][0]["appname"], "Two");
    assert_eq!(v["apps"][1]["appguid"], "third");

    let out = run(&["tag", "read", "--raw", path(&base)]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "APPGUID=second&APPNAME=Two&appguid=third"
    );
    let bytes = std::fs::read(&base).unwrap();
    assert!(bytes.starts_with(b"not really a binary"));
}

#[test]
fn a_malformed_tag_is_refused_with_its_place_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("setup.bin");
    std::fs::write(&source, b"payload").unwrap();
    let existing = dir.path().join("existing");
    std::fs::write(&existing, b"keep me").unwrap();
    let fresh = dir.path().join("fresh");
    for (tag, expected) in [
        ("appguid=a&needsadmin=maybe", "needsadmin"),
        ("brand=X", "app"),
        ("appguid=a&appname=%zz", "appname"),
        ("appguid=a&appguid=A", "appguid"),
        ("", "empty"),
    ] {
        for dest in [&existing, &fresh] {
            let out = write_tag(dest, &source, tag);
            assert_eq!(out.status.code(), Some(1), "{tag:?} was accepted");
            assert!(stderr(&out).contains(expected), "{tag:?}: {}", stderr(&out));
        }
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
        assert!(!fresh.exists(), "{tag:?} left a file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "temporary files left: {leftovers:?}");
}

#[test]
fn a_damaged_tag_block_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("setup.bin");
    std::fs::write(&file, b"payload").unwrap();
    let out = write_tag(&file, &file, "appguid=a");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut bytes = std::fs::read(&file).unwrap();
    // The block length in the trailer, pointing before the file's start.
    let n = bytes.len();
    bytes[n - 12..n - 8].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let out = run(&["tag", "read", path(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
}

/// A reader that closed its end before upkeep wrote: a quiet exit with
/// SIGPIPE's shell status, for output written with `println!` (a panic
/// before) and with `writeln!` (an error message before).
#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(run(&["repo", "init", path(&repo)]).status.success());
    let commands: [&[&str]; 2] = [
        &["omaha", "request", "--protocol", "3.1", "--app", "a:1.0"],
        &["repo", "events", "--json", path(&repo)],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = upkeep()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}
