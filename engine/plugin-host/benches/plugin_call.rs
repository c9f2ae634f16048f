//! Plugin load and call costs, with baselines measured in the same run.
//!
//! - cache load: `PluginHost::load` of a component whose precompiled entry is
//!   on disk (read, hash, manifest, checked deserialize, pre-link), against a
//!   full compile of the same component (the baseline a cache saves);
//! - instantiate + call: one `exists-path` check in a fresh, limited store,
//!   against the same check done natively in Rust.
//!
//! Targets: cache load ≤ 0.5 ms, instantiate + call ≤ 30 µs for a small Rust
//! plugin. Run with `cargo bench -p upkeep-plugin-host` (or `bench/run.sh`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use upkeep_plugin_host::{CallOptions, ExistenceInput, HostConfig, PluginHost};

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("UPKEEP_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins"));
    let p = dir.join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing; run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// Median of `n` timed runs of `f`, after `warm` untimed ones.
fn median(warm: usize, n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..warm {
        f();
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let wasm = plugin("exists-path");
    let cache = tempfile::tempdir().expect("temp dir");

    let uncached = PluginHost::new(HostConfig::default()).expect("host");
    let compile = median(1, 7, || {
        uncached.load(&wasm).expect("compile");
    });

    let host = PluginHost::new(HostConfig::with_cache(cache.path())).expect("host");
    host.load(&wasm).expect("first load fills the cache");
    let cache_load = median(20, 201, || {
        host.load(&wasm).expect("cached load");
    });

    let loaded = host.load(&wasm).expect("load");
    let app = tempfile::tempdir().expect("temp dir");
    std::fs::write(app.path().join("marker"), b"").expect("marker");
    // The call the engine makes most often: an existence check. No
    // directory mounted (the registration's dir is gone), so the cost is
    // the store, the instance and the call itself.
    let no_dir = ExistenceInput {
        app_id: "bench".into(),
        version: "1".into(),
        ..Default::default()
    };
    let call = median(200, 5001, || {
        host.check_existence(&loaded, &no_dir, CallOptions::default())
            .expect("call");
    });
    // The same with the app directory mounted read-only and a marker looked up.
    let with_dir = ExistenceInput {
        app_dir: Some(app.path().to_path_buf()),
        marker: Some("marker".into()),
        ..no_dir.clone()
    };
    let call_dir = median(200, 5001, || {
        host.check_existence(&loaded, &with_dir, CallOptions::default())
            .expect("call");
    });
    let marker = app.path().join("marker");
    let native = median(200, 5001, || {
        std::hint::black_box(std::fs::symlink_metadata(std::hint::black_box(&marker)).is_ok());
    });

    println!(
        "plugin: exists-path ({} bytes)",
        std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0)
    );
    println!("compile (baseline)            {:>10.1} µs", us(compile));
    println!(
        "cache load                    {:>10.1} µs   {:>6.1}x faster than compiling   target ≤ 500 µs: {}",
        us(cache_load),
        us(compile) / us(cache_load),
        if us(cache_load) <= 500.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "instantiate + call            {:>10.1} µs   target ≤ 30 µs: {}",
        us(call),
        if us(call) <= 30.0 { "met" } else { "MISSED" }
    );
    println!(
        "instantiate + call, dir + fs  {:>10.1} µs   {:>6.1}x the native check ({:.2} µs)",
        us(call_dir),
        us(call_dir) / us(native),
        us(native)
    );
}
