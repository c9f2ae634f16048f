//! The update check request of a pass: the machine (OS and its version),
//! each app's version, brand, language, install source, cohort, ping days
//! and install data, the fingerprints of the packages it has (for a
//! patch), the enterprise policy's channel, pin, rollback and
//! `updatedisabled`, and the outbox's waiting events riding along.

use upkeep_core::omaha::{DataRequest, Os, RequestApp, RequestBuilder};
use upkeep_core::state::Prefs;

use crate::error::ClientError;
use crate::install::{INSTALL_DATA, install_data_wanted};
use crate::outbox::{Sent, attach};
use crate::pass::Env;
use crate::policy::AppRules;

/// The update check request for `ids`: versions, channel, brand, language,
/// install source, cohort, ping days, and install data for first installs that ask for it; the
/// outbox's waiting events ride along.
pub(crate) fn build_request(
    env: &Env<'_>,
    prefs: &Prefs,
    ids: &[String],
    session: &str,
    install_source: Option<&str>,
) -> Result<(upkeep_core::omaha::Request, Sent), ClientError> {
    let config = env.config;
    let policy = env.policy.policy();
    let mut builder = RequestBuilder::new(config.protocol)
        .updater("upkeep", env!("CARGO_PKG_VERSION"))
        .os(this_os())
        .sessionid(session);
    if let Some(preference) = policy.download_preference {
        builder = builder.attribute("dlpref", preference.name());
    }
    let mut apps = Vec::new();
    for id in ids {
        let record = &prefs.apps[id];
        let mut app = RequestApp::new(id.clone(), &record.version);
        app.brand = record.brand.clone();
        app.lang = record.lang.clone();
        app.installsource = install_source.map(str::to_owned);
        app.cohort = record.cohort.clone();
        app.installdate = Some(record.days.install_date_to_send());
        app.ping = Some(record.days.ping(None));
        // The installed version's packages, for a patch from them.
        app.packages = crate::patch::cached_fingerprints(
            &env.root
                .join("downloads")
                .join(id)
                .join(record.version.to_string()),
        );
        let rules = AppRules::new(policy, Some(config), id, Some(record));
        rules.apply_to(
            &mut app,
            rules.hold(&record.version, install_source.is_some()),
        );
        if let Some(index) = install_data_wanted(record) {
            app.data.push(DataRequest {
                name: INSTALL_DATA.to_owned(),
                index: Some(index.to_owned()),
            });
        }
        apps.push(app);
    }
    let sent = attach(&prefs.outbox, &prefs.apps, &mut apps);
    for app in apps {
        builder = builder.app(app);
    }
    let request = builder
        .build()
        .map_err(|e| ClientError::Random(e.to_string()))?;
    Ok((request, sent))
}

/// The request's `os`: platform, version and architecture.
pub(crate) fn this_os() -> Os {
    Os {
        platform: Some(std::env::consts::OS.to_owned()),
        version: os_version(),
        arch: Some(std::env::consts::ARCH.to_owned()),
        ..Os::default()
    }
}

/// The operating system's version as Chromium's updater sends it on Linux:
/// the kernel release (`uname -r`). `None` where it cannot be read.
fn os_version() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 128 && !s.contains(char::is_control))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
