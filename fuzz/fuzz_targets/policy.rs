//! Fuzzes the enterprise policy file parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upkeep_core::app_id::check_app_id;
use upkeep_core::policy::{MAX_CHECK_PERIOD_MINUTES, Policy};
use upkeep_core::version::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    // Everything a parsed policy holds is in range and usable as it stands.
    assert!(policy.check_period_minutes.is_none_or(|m| m <= MAX_CHECK_PERIOD_MINUTES));
    if let Some(w) = policy.updates_suppressed {
        assert!(w.start < 1440 && (1..=1440).contains(&w.duration), "{w:?}");
        assert!(w.remaining(w.start) == Some(w.duration));
    }
    for (id, app) in &policy.apps {
        assert_eq!(check_app_id(id).as_deref(), Ok(id.as_str()));
        assert_eq!(policy.app(&id.to_ascii_uppercase()), Some(app));
        if let Some(prefix) = &app.target_version_prefix {
            // A target prefix is one some version matches: the version it spells.
            let version: Version = prefix
                .trim_end_matches('.')
                .parse()
                .expect("a target prefix is a version");
            assert!(version.matches_prefix(prefix), "{prefix:?}");
        }
        if let Some(channel) = &app.target_channel {
            assert!(!channel.is_empty() && !channel.chars().any(char::is_control));
        }
    }
    // Parsing is a function of the text.
    assert_eq!(Policy::parse(text).as_ref(), Ok(&policy));
});
