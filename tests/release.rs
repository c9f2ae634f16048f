//! The release build's split (`scripts/release.sh --split`), run on the
//! binary the tests use: the shipped file has no debug sections and no
//! symbol table, links to its debug file (which has both) by name and
//! build ID, still runs, and is listed with its hash; a file that is not an executable is refused and
//! leaves the output folder as it was.

mod support;

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use support::world::text;
use support::{upkeep_bin, workspace_root};

fn sections(file: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-S")
        .arg("-W")
        .arg(file)
        .output()
        .expect("readelf (binutils) is needed");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn split(bin: &Path, out: &Path) -> std::process::Output {
    Command::new(workspace_root().join("scripts/release.sh"))
        .arg("--split")
        .arg(bin)
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn the_shipped_binary_has_its_debug_information_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let run = split(upkeep_bin(), &out);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let shipped = out.join("upkeep");
    let debug = out.join("upkeep.debug");
    let built = std::fs::metadata(upkeep_bin()).unwrap().len();
    let size = std::fs::metadata(&shipped).unwrap().len();
    assert!(size * 10 < built * 6, "{size} bytes shipped of {built}");
    assert!(
        text(&run.stdout).contains(&format!("upkeep: {size} bytes")),
        "{}",
        text(&run.stdout)
    );

    let shipped_sections = sections(&shipped);
    for gone in [".debug_info", ".debug_line", ".debug_str", ".symtab"] {
        assert!(!shipped_sections.contains(gone), "{gone} is still shipped");
    }
    for kept in [".gnu_debuglink", ".note.gnu.build-id"] {
        assert!(
            shipped_sections.contains(kept),
            "{kept} is missing:\n{shipped_sections}"
        );
    }
    let debug_sections = sections(&debug);
    for kept in [".debug_line", ".symtab"] {
        assert!(
            debug_sections.contains(kept),
            "{kept} is not in upkeep.debug"
        );
    }
    // The link names the debug file alone, as debuggers look it up.
    let link = Command::new("readelf")
        .args(["-p", ".gnu_debuglink"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(
        text(&link.stdout).contains("upkeep.debug"),
        "{}",
        text(&link.stdout)
    );
    assert!(!text(&link.stdout).contains('/'), "{}", text(&link.stdout));

    // It runs.
    let version = Command::new(&shipped).arg("--version").output().unwrap();
    assert!(version.status.success(), "{}", text(&version.stderr));
    assert!(
        text(&version.stdout).starts_with("upkeep "),
        "{}",
        text(&version.stdout)
    );

    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for (name, path) in [("upkeep", &shipped), ("upkeep.debug", &debug)] {
        let sha = hex::encode(Sha256::digest(std::fs::read(path).unwrap()));
        assert!(sums.contains(&format!("{sha}  {name}\n")), "{sums}");
    }
    // Nothing else is left in the folder.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["SHA256SUMS", "upkeep", "upkeep.debug"]);
}

#[test]
fn a_file_that_is_not_an_executable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("upkeep");
    std::fs::write(&bogus, b"#!/bin/sh\necho not a build\n").unwrap();
    let out = dir.path().join("dist");
    let run = split(&bogus, &out);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("is not an ELF file"),
        "{}",
        text(&run.stderr)
    );
    assert!(!out.exists(), "the output folder was made");
    let run = split(&dir.path().join("missing"), &out);
    assert!(
        text(&run.stderr).contains("no such file"),
        "{}",
        text(&run.stderr)
    );
}
