//! Fuzzes the installer-tag parser and the tag block appended to a binary.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use upkeep_core::app_id::check_app_id;
use upkeep_core::tag::Tag;
use upkeep_core::tag::file::{read_tag, read_tag_text, write_tagged};

/// One scratch directory, reused by every run (scripts/fuzz.sh runs one
/// target in one process at a time), so runs leave nothing behind but it.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join("upkeep-fuzz-tag");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(tag) = Tag::parse(&text) {
        // A parsed tag names at least one app, each with a valid id, none twice.
        assert!(!tag.apps.is_empty());
        for (i, app) in tag.apps.iter().enumerate() {
            assert!(check_app_id(&app.appid).is_ok(), "{:?}", app.appid);
            assert!(
                tag.apps[..i]
                    .iter()
                    .all(|other| !other.appid.eq_ignore_ascii_case(&app.appid)),
                "{:?} twice",
                app.appid
            );
        }
        // Parsing is a function of the text.
        assert_eq!(Tag::parse(&text).as_ref(), Ok(&tag));
    }

    let dir = &*DIR;
    // The input as a whole file: reading its tag never panics, and a tag
    // read from it is one that parses.
    let file = dir.join("input.bin");
    std::fs::write(&file, data).expect("write the input");
    let stored = read_tag_text(&file);
    if let Ok(Some(stored_text)) = &stored {
        match read_tag(&file) {
            Ok(Some(tag)) => assert_eq!(Tag::parse(stored_text).as_ref(), Ok(&tag)),
            Ok(None) => panic!("a stored tag vanished"),
            Err(_) => assert!(Tag::parse(stored_text).is_err()),
        }
    }

    // The input as a tag written to a copy of a small binary: written only
    // when it parses, read back as the same tag, and rewriting replaces it.
    let binary = dir.join("setup");
    std::fs::write(&binary, b"\x7fELF not really").expect("write the binary");
    let tagged = dir.join("tagged");
    let _ = std::fs::remove_file(&tagged);
    match write_tagged(&binary, &text, &tagged) {
        Ok(tag) => {
            assert_eq!(read_tag(&tagged).expect("read back"), Some(tag.clone()));
            write_tagged(&tagged, &text, &tagged).expect("rewrite in place");
            assert_eq!(read_tag(&tagged).expect("read again"), Some(tag));
            let bytes = std::fs::read(&tagged).expect("read the copy");
            assert!(bytes.starts_with(b"\x7fELF not really"));
        }
        Err(_) => {
            assert!(Tag::parse(text.trim()).is_err());
            assert!(!tagged.exists(), "a refused tag left a file");
        }
    }
});
