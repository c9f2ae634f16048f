//! Qualifier: checks that the qualification app was installed correctly by
//! the updater version under test.
//!
//! 1. The version file (default `VERSION`) holds the installed version.
//! 2. Every line of the checksum file (default `SHA256SUMS`, the format of
//!    `sha256sum`: `<hex>  <path>`) names a file that exists with that hash.
//! 3. Every file in the `required` setting (comma-separated) exists.
//!
//! Settings: `version-file`, `sums-file`, `sums-required` (`true`/`false`,
//! default `true`), `required`.

use std::collections::HashMap;
use std::io::Read;

use sha2::{Digest, Sha256};
use upkeep_plugin_sdk::{QualificationRequest, Qualifier, Verdict, debug, join_inside};

struct SelfTest;

impl Qualifier for SelfTest {
    fn qualify(request: QualificationRequest) -> Verdict {
        match run(&request) {
            Ok(checked) => {
                debug!("{} {}: {checked} checks passed", request.app_id, request.app_version);
                Verdict::Pass
            }
            Err(reason) => Verdict::Fail(reason),
        }
    }
}

fn run(request: &QualificationRequest) -> Result<u32, String> {
    let settings: HashMap<&str, &str> = request.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = request.app_dir.as_str();
    let mut checked = 0;

    let version_file = settings.get("version-file").copied().unwrap_or("VERSION");
    let path = join_inside(dir, version_file)?;
    let found = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {version_file}: {e}"))?;
    if found.trim() != request.app_version {
        return Err(format!("{version_file} says {:?}, expected {:?}", found.trim(), request.app_version));
    }
    checked += 1;

    let sums_file = settings.get("sums-file").copied().unwrap_or("SHA256SUMS");
    let sums_required = settings.get("sums-required").is_none_or(|v| *v != "false");
    match std::fs::read_to_string(join_inside(dir, sums_file)?) {
        Ok(text) => {
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let (hash, name) = line
                    .split_once(' ')
                    .map(|(h, rest)| (h, rest.trim_start_matches([' ', '*'])))
                    .ok_or_else(|| format!("{sums_file} line {}: expected '<sha256>  <path>'", n + 1))?;
                let actual = sha256_of(&join_inside(dir, name)?).map_err(|e| format!("{name}: {e}"))?;
                if !actual.eq_ignore_ascii_case(hash) {
                    return Err(format!("{name} has SHA-256 {actual}, {sums_file} expects {hash}"));
                }
                checked += 1;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !sums_required => {}
        Err(e) => return Err(format!("cannot read {sums_file}: {e}")),
    }

    for name in settings.get("required").into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        std::fs::metadata(join_inside(dir, name)?).map_err(|e| format!("required file {name}: {e}"))?;
        checked += 1;
    }
    Ok(checked)
}

fn sha256_of(path: &str) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

upkeep_plugin_sdk::export_qualifier!(SelfTest);
