//! App ids as the client stores them (the rule lives in core, beside the
//! tag parser that applies it too).

pub use upkeep_core::app_id::{InvalidAppId, check_app_id};
