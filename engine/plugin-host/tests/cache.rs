//! The compile cache: a second load is served from disk, a damaged entry is
//! recompiled (never trusted), and an unsupported API version is refused
//! before anything is compiled or cached.

mod common;

use std::fs;

use common::plugin_path;
use upkeep_plugin_host::{CacheOutcome, HostConfig, PluginError, PluginHost};

fn cached_host(dir: &std::path::Path) -> PluginHost {
    PluginHost::new(HostConfig::with_cache(dir)).unwrap()
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => vec![],
    }
}

#[test]
fn second_load_hits_the_cache_and_still_runs() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = plugin_path("exists-path");
    let host = cached_host(cache.path());
    let first = host.load(&wasm).unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    let files = entries(cache.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(first.content_hash()),
        "entry {name} is keyed by the content hash"
    );

    // A new host (a new process, in effect) finds it.
    let host = cached_host(cache.path());
    let second = host.load(&wasm).unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    let app = tempfile::tempdir().unwrap();
    let input = upkeep_plugin_host::ExistenceInput {
        app_id: "a".into(),
        version: "1".into(),
        app_dir: Some(app.path().to_path_buf()),
        marker: None,
        settings: vec![],
    };
    let r = host
        .check_existence(&second, &input, Default::default())
        .unwrap();
    assert_eq!(
        r.value,
        upkeep_plugin_host::bindings::existence::Presence::Present
    );
}

#[test]
fn damaged_entries_are_recompiled_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = plugin_path("exists-path");
    cached_host(cache.path()).load(&wasm).unwrap();
    let entry = entries(cache.path()).remove(0);
    let good = fs::read(&entry).unwrap();

    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0xff;
            b
        }),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("empty", vec![]),
        ("garbage with a valid trailer", {
            use sha2::Digest;
            let mut b = b"not a serialized component at all".to_vec();
            let digest = sha2::Sha256::digest(&b);
            b.extend_from_slice(&digest);
            b
        }),
    ];
    for (label, bytes) in damages {
        fs::write(&entry, &bytes).unwrap();
        let host = cached_host(cache.path());
        let plugin = host.load(&wasm).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(plugin.cache_outcome(), CacheOutcome::Replaced, "{label}");
        assert_eq!(
            fs::read(&entry).unwrap(),
            good,
            "{label}: the entry is rewritten"
        );
        let app = tempfile::tempdir().unwrap();
        let input = upkeep_plugin_host::ExistenceInput {
            app_dir: Some(app.path().into()),
            ..Default::default()
        };
        host.check_existence(&plugin, &input, Default::default())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
    }
}

#[test]
fn unsupported_api_is_refused_before_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("future.wasm");
    fs::copy(plugin_path("exists-path"), &wasm).unwrap();
    fs::write(
        dir.path().join("future.toml"),
        "[plugin]\nname = \"future\"\nversion = \"1.0.0\"\nworld = \"existence-checker\"\napi = \"0.2.0\"\n",
    )
    .unwrap();
    let host = cached_host(cache.path());
    match host.load(&wasm) {
        Err(PluginError::UnsupportedApi {
            plugin, requested, ..
        }) => {
            assert_eq!(plugin, "future");
            assert_eq!(requested.to_string(), "0.2.0");
        }
        Err(e) => panic!("expected UnsupportedApi, got {e}"),
        Ok(_) => panic!("a plugin for a newer API must not load"),
    }
    assert!(
        entries(cache.path()).is_empty(),
        "nothing was compiled or cached"
    );
}

#[test]
fn a_missing_manifest_names_the_expected_path() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("lonely.wasm");
    fs::copy(plugin_path("exists-path"), &wasm).unwrap();
    let err = PluginHost::new(HostConfig::default())
        .unwrap()
        .load(&wasm)
        .err()
        .expect("no manifest");
    let msg = err.to_string();
    assert!(
        msg.contains("has no manifest") && msg.contains("lonely.toml"),
        "{msg}"
    );
}
