//! Looking inside a component without running it: what it imports and
//! exports, which world and API version that amounts to, and what its
//! manifest asks for.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::PluginHost;
use crate::error::PluginError;
use crate::manifest::{Access, Manifest};
use crate::world::World;

/// What `upkeep plugin inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The component file.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The world the component's exports implement, if any.
    pub detected_world: Option<World>,
    /// The `upkeep:plugin` version its imports name, if any.
    pub detected_api: Option<String>,
    /// Every import name.
    pub imports: Vec<String>,
    /// Every export name.
    pub exports: Vec<String>,
    /// The manifest, when one sits beside the component.
    pub manifest: Option<ManifestSummary>,
    /// Problems found: manifest missing or invalid, world or API mismatch.
    pub problems: Vec<String>,
}

/// The parts of a manifest an author checks.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestSummary {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Declared world.
    pub world: World,
    /// Declared API version.
    pub api: String,
    /// Requested directories: mount, access, guest path.
    pub directories: Vec<(String, Access, String)>,
    /// Requested time budget.
    pub timeout_ms: Option<u64>,
    /// Requested memory budget.
    pub memory_mib: Option<u64>,
}

/// Inspects the component at `path` (compiling it through the host's cache).
pub fn inspect(host: &PluginHost, path: &Path) -> Result<Inspection, PluginError> {
    let wasm = std::fs::read(path).map_err(|source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(&wasm));
    let mut problems = Vec::new();
    let manifest = match Manifest::load_beside(path) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let label = manifest
        .as_ref()
        .map_or_else(|| path.display().to_string(), |m| m.plugin.name.clone());
    let (component, _) = host.compile(&wasm, &sha256, &label)?;
    let ty = component.component_type();
    let engine = host.engine();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let detected_world = World::ALL
        .into_iter()
        .find(|w| exports.iter().any(|e| e == w.export_name()));
    let detected_api = imports
        .iter()
        .find_map(|i| {
            i.strip_prefix("upkeep:plugin/host@")
                .or_else(|| i.strip_prefix("upkeep:plugin/types@"))
        })
        .map(str::to_string);
    if let Some(m) = &manifest {
        if detected_world.is_some_and(|w| w != m.plugin.world) {
            problems.push(format!(
                "the manifest says world {} but the component exports {}",
                m.plugin.world,
                exports.join(", ")
            ));
        }
        if detected_world.is_none() {
            problems.push(format!(
                "the component exports none of the world functions; it exports: {}",
                exports.join(", ")
            ));
        }
        if let Some(api) = &detected_api
            && *api != m.plugin.api.to_string()
        {
            problems.push(format!(
                "the manifest says API {} but the component imports upkeep:plugin@{api}",
                m.plugin.api
            ));
        }
        if let Err(e) = crate::manifest::check_api(m) {
            problems.push(e.to_string());
        }
    }
    let manifest = manifest.map(|m| ManifestSummary {
        directories: m
            .directories
            .iter()
            .map(|d| {
                let guest = m.plugin.world.mount(&d.mount).map_or("?", |x| x.guest_path);
                (d.mount.clone(), d.access, guest.to_string())
            })
            .collect(),
        name: m.plugin.name,
        version: m.plugin.version,
        world: m.plugin.world,
        api: m.plugin.api.to_string(),
        timeout_ms: m.limits.timeout_ms,
        memory_mib: m.limits.memory_mib,
    });
    Ok(Inspection {
        path: path.display().to_string(),
        size: wasm.len() as u64,
        sha256,
        detected_world,
        detected_api,
        imports,
        exports,
        manifest,
        problems,
    })
}
