//! Host bindings generated from `wit/upkeep-plugin@0.1.0`, one module per
//! world. The `host` and `types` interfaces are generated once (in
//! `qualifier`) and shared by the other worlds.

#![allow(missing_docs)]

/// The qualifier world.
pub mod qualifier {
    wasmtime::component::bindgen!({
        world: "qualifier",
        path: "../../wit/upkeep-plugin@0.1.0",
        additional_derives: [PartialEq, Eq],
    });
}

/// The existence-checker world.
pub mod existence {
    wasmtime::component::bindgen!({
        world: "existence-checker",
        path: "../../wit/upkeep-plugin@0.1.0",
        additional_derives: [PartialEq, Eq],
        with: {
            "upkeep:plugin/types": super::qualifier::upkeep::plugin::types,
            "upkeep:plugin/host": super::qualifier::upkeep::plugin::host,
        },
    });
}

/// The installer world.
pub mod installer {
    wasmtime::component::bindgen!({
        world: "installer",
        path: "../../wit/upkeep-plugin@0.1.0",
        additional_derives: [PartialEq, Eq],
        with: {
            "upkeep:plugin/types": super::qualifier::upkeep::plugin::types,
            "upkeep:plugin/host": super::qualifier::upkeep::plugin::host,
        },
    });
}

/// The telemetry-sink world.
pub mod telemetry {
    wasmtime::component::bindgen!({
        world: "telemetry-sink",
        path: "../../wit/upkeep-plugin@0.1.0",
        additional_derives: [PartialEq, Eq],
        with: {
            "upkeep:plugin/types": super::qualifier::upkeep::plugin::types,
            "upkeep:plugin/host": super::qualifier::upkeep::plugin::host,
        },
    });
}

pub use qualifier::upkeep::plugin::host;
pub use qualifier::upkeep::plugin::types;
