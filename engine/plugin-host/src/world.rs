//! The four plugin worlds and the directories each may be handed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::manifest::Access;

/// A world of the `upkeep:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Self-test of a freshly installed updater version.
    Qualifier,
    /// Is an app still installed?
    ExistenceChecker,
    /// Install, update or uninstall an app.
    Installer,
    /// Receives update events.
    TelemetrySink,
}

/// A directory a world's calls may mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// The name manifests use.
    pub name: &'static str,
    /// Where the plugin sees it.
    pub guest_path: &'static str,
    /// The most access the host ever gives it.
    pub max_access: Access,
}

/// Where an installer finds its installer data as a file.
pub const INSTALLER_DATA_DIR: &str = "/installer-data";

/// The file's name inside [`INSTALLER_DATA_DIR`].
pub const INSTALLER_DATA_FILE: &str = "installerdata";

const APP_RO: Mount = Mount {
    name: "app",
    guest_path: "/app",
    max_access: Access::ReadOnly,
};

impl World {
    /// Every world.
    pub const ALL: [World; 4] = [
        World::Qualifier,
        World::ExistenceChecker,
        World::Installer,
        World::TelemetrySink,
    ];

    /// The WIT name of the world.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Qualifier => "qualifier",
            World::ExistenceChecker => "existence-checker",
            World::Installer => "installer",
            World::TelemetrySink => "telemetry-sink",
        }
    }

    /// The function the world exports.
    pub fn export_name(self) -> &'static str {
        match self {
            World::Qualifier => "qualify",
            World::ExistenceChecker => "check",
            World::Installer => "run",
            World::TelemetrySink => "consume",
        }
    }

    /// The directories this world's calls may mount. An installer's
    /// `installer-data` mount holds one file, [`INSTALLER_DATA_FILE`]: the
    /// call's installer data, UTF-8 with a byte-order mark as Omaha writes
    /// it; mounted only when the call has installer data.
    pub fn mounts(self) -> &'static [Mount] {
        match self {
            World::Qualifier | World::ExistenceChecker => &[APP_RO],
            World::Installer => &[
                Mount {
                    name: "payload",
                    guest_path: "/payload",
                    max_access: Access::ReadOnly,
                },
                Mount {
                    name: "install",
                    guest_path: "/install",
                    max_access: Access::ReadWrite,
                },
                Mount {
                    name: "installer-data",
                    guest_path: INSTALLER_DATA_DIR,
                    max_access: Access::ReadOnly,
                },
            ],
            World::TelemetrySink => &[Mount {
                name: "data",
                guest_path: "/data",
                max_access: Access::ReadWrite,
            }],
        }
    }

    /// The mount called `name`, if this world has one.
    pub fn mount(self, name: &str) -> Option<&'static Mount> {
        self.mounts().iter().find(|m| m.name == name)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wit_name())
    }
}

impl FromStr for World {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.wit_name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown world {s:?}; the worlds are {}",
                    World::ALL.map(World::wit_name).join(", ")
                )
            })
    }
}
