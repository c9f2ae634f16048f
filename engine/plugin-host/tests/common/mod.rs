//! Helpers shared by the plugin-host integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use upkeep_plugin_host::{HostConfig, Plugin, PluginHost};

/// Where `scripts/build-plugins.sh` put the components
/// (`UPKEEP_PLUGIN_DIR`, else `target/plugins` of this workspace).
pub fn plugin_dir() -> PathBuf {
    std::env::var_os("UPKEEP_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins"))
}

/// The path of a built plugin; fails with the command to build it.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = plugin_dir();
    for candidate in [
        dir.join(format!("{name}.wasm")),
        dir.join("test").join(format!("{name}.wasm")),
    ] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "plugin {name} is not built in {}; run scripts/build-plugins.sh (scripts/test.sh does it for you)",
        dir.display()
    );
}

/// A host with a small epoch tick and no cache.
pub fn host() -> PluginHost {
    PluginHost::new(HostConfig::default()).expect("plugin host")
}

/// Loads a built plugin by name.
pub fn load(host: &PluginHost, name: &str) -> Plugin {
    host.load(&plugin_path(name))
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}
