//! TUF 1.0 metadata: the four top-level roles and delegated targets, parsed
//! from and serialised to the JSON format python-tuf reads and writes.
//!
//! Every type keeps the fields it does not know in `unrecognized`, because
//! signatures cover them (specification, section 4).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::tuf::cjson;
use crate::tuf::error::TufError;
use crate::tuf::keys::{Key, Signer, Verdict};

/// The specification version this crate writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// An expiry date (RFC 3339, written as `YYYY-MM-DDTHH:MM:SSZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry(pub OffsetDateTime);

impl Expiry {
    /// Formats the date as TUF writes it, in UTC to the second.
    pub fn to_tuf_string(&self) -> String {
        format_time(self.0)
    }
}

/// Formats an instant as `YYYY-MM-DDTHH:MM:SSZ`, with the fraction of a
/// second (`.468918`) only when it is not zero, so that a parsed expiry is
/// written back unchanged. An instant whose UTC date is outside the years
/// 0000–9999 is written in its own offset.
pub fn format_time(t: OffsetDateTime) -> String {
    let Some(t) = t.checked_to_offset(time::UtcOffset::UTC) else {
        return t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    };
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.nanosecond() != 0 {
        let fraction = format!("{:09}", t.nanosecond());
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 instant.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_tuf_string())
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = parse_time(&s)
            .map_err(|e| serde::de::Error::custom(format!("bad expiry date {s:?}: {e}")))?;
        // Written back in UTC, so it must have a UTC date in range.
        t.checked_to_offset(time::UtcOffset::UTC)
            .map(Expiry)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "bad expiry date {s:?}: its UTC date is out of range"
                ))
            })
    }
}

/// A signature in a metadata envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The id of the signing key.
    pub keyid: String,
    /// The signature, hex encoded.
    pub sig: String,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// The keys and threshold of a top-level role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// The ids of the keys that may sign for the role.
    pub keyids: Vec<String>,
    /// How many of them must sign.
    pub threshold: u64,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl RoleKeys {
    /// A role with these keys and threshold.
    pub fn new(keyids: Vec<String>, threshold: u64) -> RoleKeys {
        RoleKeys {
            keyids,
            threshold,
            unrecognized: BTreeMap::new(),
        }
    }
}

/// What each metadata type has in common.
pub trait Role: Serialize + DeserializeOwned {
    /// The `_type` value.
    const TYPE: &'static str;
    /// The metadata version.
    fn version(&self) -> u64;
    /// The expiry date.
    fn expires(&self) -> Expiry;
    /// Checks the invariants serde cannot express.
    fn validate(&self, file: &str) -> Result<(), TufError> {
        let _ = file;
        Ok(())
    }
}

/// Root metadata: the keys of the top-level roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The specification version.
    pub spec_version: String,
    /// The metadata version.
    pub version: u64,
    /// The expiry date.
    pub expires: Expiry,
    /// Whether files are served under version- and hash-prefixed names.
    pub consistent_snapshot: bool,
    /// Keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// The four top-level role names.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

impl Role for Root {
    const TYPE: &'static str = "root";
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> Expiry {
        self.expires
    }
    fn validate(&self, file: &str) -> Result<(), TufError> {
        check_version(self.version, file)?;
        for role in TOP_LEVEL_ROLES {
            let r = self
                .roles
                .get(role)
                .ok_or_else(|| TufError::malformed(file, format!("root has no role {role:?}")))?;
            check_role_keys(&r.keyids, r.threshold, file, role)?;
        }
        Ok(())
    }
}

impl Root {
    /// The keys and threshold of a top-level role.
    pub fn role(&self, name: &str) -> Option<&RoleKeys> {
        self.roles.get(name)
    }

    /// Whether the keys or threshold of `role` differ between `self` and `other`.
    pub fn role_keys_changed(&self, other: &Root, role: &str) -> bool {
        let keys = |r: &Root| -> Option<(BTreeSet<(String, Key)>, u64)> {
            let rk = r.roles.get(role)?;
            let set = rk
                .keyids
                .iter()
                .filter_map(|id| r.keys.get(id).map(|k| (id.clone(), k.clone())))
                .collect::<BTreeSet<_>>();
            Some((set, rk.threshold))
        };
        keys(self) != keys(other)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.keytype, &self.scheme, &self.keyval.public).cmp(&(
            &other.keytype,
            &other.scheme,
            &other.keyval.public,
        ))
    }
}

fn check_version(version: u64, file: &str) -> Result<(), TufError> {
    if version == 0 {
        return Err(TufError::malformed(file, "version must be at least 1"));
    }
    Ok(())
}

fn check_role_keys(
    keyids: &[String],
    threshold: u64,
    file: &str,
    role: &str,
) -> Result<(), TufError> {
    if threshold < 1 {
        return Err(TufError::malformed(
            file,
            format!("role {role:?} has threshold 0"),
        ));
    }
    let unique: BTreeSet<&String> = keyids.iter().collect();
    if unique.len() != keyids.len() {
        return Err(TufError::malformed(
            file,
            format!("role {role:?} lists a key id twice"),
        ));
    }
    Ok(())
}

/// The version (and optionally length and hashes) of a metadata file, as
/// listed in timestamp and snapshot metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The version of the file.
    pub version: u64,
    /// Its length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes by algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl MetaFile {
    /// A meta entry with only a version.
    pub fn new(version: u64) -> MetaFile {
        MetaFile {
            version,
            length: None,
            hashes: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// A meta entry with version, length and SHA-256 of `bytes`.
    pub fn with_hashes(version: u64, bytes: &[u8]) -> MetaFile {
        MetaFile {
            version,
            length: Some(bytes.len() as u64),
            hashes: Some(BTreeMap::from([(
                "sha256".to_owned(),
                hex::encode(Sha256::digest(bytes)),
            )])),
            unrecognized: BTreeMap::new(),
        }
    }

    /// Checks `bytes` against the length and hashes, when given.
    pub fn verify(&self, file: &str, bytes: &[u8]) -> Result<(), TufError> {
        if let Some(len) = self.length {
            check_length(file, len, bytes)?;
        }
        if let Some(hashes) = &self.hashes {
            check_hashes(file, hashes, bytes)?;
        }
        Ok(())
    }
}

/// Checks that `bytes` is `expected` bytes long.
pub fn check_length(file: &str, expected: u64, bytes: &[u8]) -> Result<(), TufError> {
    if bytes.len() as u64 != expected {
        return Err(TufError::LengthMismatch {
            file: file.into(),
            expected,
            actual: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Checks `bytes` against every supported hash in `hashes` (sha256, sha512);
/// unknown algorithms are skipped, but at least one must be supported.
pub fn check_hashes(
    file: &str,
    hashes: &BTreeMap<String, String>,
    bytes: &[u8],
) -> Result<(), TufError> {
    let mut checked = 0;
    for (alg, expected) in hashes {
        let actual = match alg.as_str() {
            "sha256" => hex::encode(Sha256::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            _ => continue,
        };
        checked += 1;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(TufError::HashMismatch {
                file: file.into(),
                algorithm: alg.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    if checked == 0 {
        return Err(TufError::NoSupportedHash {
            file: file.into(),
            algorithms: hashes.keys().cloned().collect(),
        });
    }
    Ok(())
}

/// Timestamp metadata: the current snapshot version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The specification version.
    pub spec_version: String,
    /// The metadata version.
    pub version: u64,
    /// The expiry date.
    pub expires: Expiry,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Timestamp {
    /// The `snapshot.json` entry (present after [`Role::validate`]).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}

impl Role for Timestamp {
    const TYPE: &'static str = "timestamp";
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> Expiry {
        self.expires
    }
    fn validate(&self, file: &str) -> Result<(), TufError> {
        check_version(self.version, file)?;
        if self.meta.len() != 1 || self.snapshot_meta().is_none() {
            return Err(TufError::malformed(
                file,
                "timestamp meta must hold exactly snapshot.json",
            ));
        }
        Ok(())
    }
}

/// Snapshot metadata: the versions of every targets metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The specification version.
    pub spec_version: String,
    /// The metadata version.
    pub version: u64,
    /// The expiry date.
    pub expires: Expiry,
    /// Entries by file name (`targets.json`, `ROLE.json`).
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Role for Snapshot {
    const TYPE: &'static str = "snapshot";
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> Expiry {
        self.expires
    }
    fn validate(&self, file: &str) -> Result<(), TufError> {
        check_version(self.version, file)
    }
}

/// A target file: its length, hashes and custom data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// The length in bytes.
    pub length: u64,
    /// Hashes by algorithm.
    pub hashes: BTreeMap<String, String>,
    /// Application data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl TargetFile {
    /// Describes `bytes` with its length and SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> TargetFile {
        TargetFile {
            length: bytes.len() as u64,
            hashes: BTreeMap::from([("sha256".to_owned(), hex::encode(Sha256::digest(bytes)))]),
            custom: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Checks `bytes` against the length and hashes.
    pub fn verify(&self, file: &str, bytes: &[u8]) -> Result<(), TufError> {
        check_length(file, self.length, bytes)?;
        check_hashes(file, &self.hashes, bytes)
    }

    /// The hash used as file name prefix with consistent snapshots: sha256
    /// when listed, else the first listed.
    pub fn prefix_hash(&self) -> Option<&str> {
        self.hashes
            .get("sha256")
            .or_else(|| self.hashes.values().next())
            .map(String::as_str)
    }
}

/// A delegation from a targets role to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// The delegated role's name.
    pub name: String,
    /// Its keys.
    pub keyids: Vec<String>,
    /// Its threshold.
    pub threshold: u64,
    /// Whether the search stops at this role for matching paths.
    #[serde(default)]
    pub terminating: bool,
    /// Shell-style path patterns the role is trusted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of SHA-256(target path) the role is trusted for
    /// (hashed bin delegation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl DelegatedRole {
    /// Whether `target` falls within this role's paths.
    pub fn matches(&self, target: &str) -> bool {
        self.matches_hashed(target, &target_path_hash(target))
    }

    /// [`DelegatedRole::matches`] with the hex SHA-256 of `target` already
    /// computed (a role with many hashed bins checks every bin).
    pub fn matches_hashed(&self, target: &str, target_hash: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let hash = target_hash.as_bytes();
            return prefixes.iter().any(|p| {
                hash.get(..p.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
            });
        }
        false
    }
}

/// The lower-case hex SHA-256 of a target path, which hashed bin
/// delegations (`path_hash_prefixes`) match against.
pub fn target_path_hash(target: &str) -> String {
    hex::encode(Sha256::digest(target.as_bytes()))
}

/// Shell-style matching per `/`-separated component: `*` matches any run
/// of characters within a component, `?` one character, `[...]` a set.
/// Pattern and path must have the same number of components.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = path.split('/').collect();
    p.len() == t.len()
        && p.iter().zip(&t).all(|(p, t)| {
            glob(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        })
}

fn glob(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob(&p[1..], &t[1..]),
        Some('[') => match class_end(p) {
            Some(end) => {
                let Some(c) = t.first() else { return false };
                class_matches(&p[1..end], *c) && glob(&p[end + 1..], &t[1..])
            }
            None => t.first() == Some(&'[') && glob(&p[1..], &t[1..]),
        },
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..]),
    }
}

fn class_end(p: &[char]) -> Option<usize> {
    let mut i = 1;
    if p.get(i) == Some(&'!') {
        i += 1;
    }
    if p.get(i) == Some(&']') {
        i += 1;
    }
    while i < p.len() {
        if p[i] == ']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negate, class) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            if class[i] <= c && c <= class[i + 2] {
                found = true;
            }
            i += 3;
        } else {
            if class[i] == c {
                found = true;
            }
            i += 1;
        }
    }
    found != negate
}

/// Succinct hashed bin delegation (TAP 15): `2^bit_length` roles named
/// `NAME_PREFIX-XX` share one set of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// The keys of every bin.
    pub keyids: Vec<String>,
    /// The threshold of every bin.
    pub threshold: u64,
    /// How many leading bits of SHA-256(target path) select the bin.
    pub bit_length: u32,
    /// The bins' name prefix.
    pub name_prefix: String,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl SuccinctRoles {
    /// The bin responsible for `target`.
    pub fn role_for(&self, target: &str) -> String {
        let h = Sha256::digest(target.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let bin = if self.bit_length == 0 {
            0
        } else {
            first >> (32 - self.bit_length)
        };
        let width = (self.bit_length as usize).div_ceil(4).max(1);
        format!("{}-{:0width$x}", self.name_prefix, bin, width = width)
    }

    /// Whether `role` is one of the bins.
    pub fn is_bin(&self, role: &str) -> bool {
        let Some(suffix) = role
            .strip_prefix(&self.name_prefix)
            .and_then(|s| s.strip_prefix('-'))
        else {
            return false;
        };
        let width = (self.bit_length as usize).div_ceil(4).max(1);
        suffix.len() == width
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < (1u64 << self.bit_length))
            && suffix
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    }
}

/// The delegations of a targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles, in search order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Succinct hashed bins, instead of `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// One role to visit when searching for a target: name, keys, threshold,
/// whether it terminates the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleToVisit {
    /// The role name.
    pub name: String,
    /// Its key ids.
    pub keyids: Vec<String>,
    /// Its threshold.
    pub threshold: u64,
    /// Whether the search ends with it.
    pub terminating: bool,
}

impl Delegations {
    /// The delegated roles trusted for `target`, in order.
    pub fn roles_for_target(&self, target: &str) -> Vec<RoleToVisit> {
        if let Some(roles) = &self.roles {
            let hash = target_path_hash(target);
            return roles
                .iter()
                .filter(|r| r.matches_hashed(target, &hash))
                .map(|r| RoleToVisit {
                    name: r.name.clone(),
                    keyids: r.keyids.clone(),
                    threshold: r.threshold,
                    terminating: r.terminating,
                })
                .collect();
        }
        if let Some(s) = &self.succinct_roles {
            return vec![RoleToVisit {
                name: s.role_for(target),
                keyids: s.keyids.clone(),
                threshold: s.threshold,
                terminating: true,
            }];
        }
        Vec::new()
    }

    /// Verifies that `env`, the metadata of delegated role `role`, is signed
    /// by a threshold of the keys this delegation gives it. `delegator`
    /// and `file` name the failure.
    pub fn verify_delegated(
        &self,
        env: &Envelope<Targets>,
        role: &str,
        delegator: &str,
        file: &str,
    ) -> Result<(), TufError> {
        let keys = self
            .role_keys(role)
            .ok_or_else(|| TufError::BadDelegation {
                role: role.into(),
                reason: format!("not delegated by {delegator:?}"),
            })?;
        env.verify(&self.keys, &keys, role, file)
    }

    /// The keys and threshold of delegated role `name`, if delegated here.
    pub fn role_keys(&self, name: &str) -> Option<RoleKeys> {
        if let Some(roles) = &self.roles {
            return roles
                .iter()
                .find(|r| r.name == name)
                .map(|r| RoleKeys::new(r.keyids.clone(), r.threshold));
        }
        if let Some(s) = &self.succinct_roles
            && s.is_bin(name)
        {
            return Some(RoleKeys::new(s.keyids.clone(), s.threshold));
        }
        None
    }

    fn validate(&self, file: &str) -> Result<(), TufError> {
        match (&self.roles, &self.succinct_roles) {
            (Some(roles), None) => {
                let mut names = BTreeSet::new();
                for r in roles {
                    if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                        return Err(TufError::BadDelegation {
                            role: r.name.clone(),
                            reason: format!("{file} delegates to a top-level role name"),
                        });
                    }
                    if !names.insert(&r.name) {
                        return Err(TufError::BadDelegation {
                            role: r.name.clone(),
                            reason: format!("{file} delegates to it twice"),
                        });
                    }
                    if r.paths.is_some() == r.path_hash_prefixes.is_some() {
                        return Err(TufError::BadDelegation {
                            role: r.name.clone(),
                            reason: format!(
                                "{file} must give exactly one of paths and path_hash_prefixes"
                            ),
                        });
                    }
                    check_role_keys(&r.keyids, r.threshold, file, &r.name)?;
                }
                Ok(())
            }
            (None, Some(s)) => {
                if s.bit_length == 0 || s.bit_length > 32 {
                    return Err(TufError::BadDelegation {
                        role: s.name_prefix.clone(),
                        reason: format!("{file}: succinct bit_length must be 1 to 32"),
                    });
                }
                check_role_keys(&s.keyids, s.threshold, file, &s.name_prefix)
            }
            _ => Err(TufError::malformed(
                file,
                "delegations need exactly one of roles and succinct_roles",
            )),
        }
    }
}

/// Targets metadata (top-level or delegated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The specification version.
    pub spec_version: String,
    /// The metadata version.
    pub version: u64,
    /// The expiry date.
    pub expires: Expiry,
    /// Target files by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Further delegations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Role for Targets {
    const TYPE: &'static str = "targets";
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> Expiry {
        self.expires
    }
    fn validate(&self, file: &str) -> Result<(), TufError> {
        check_version(self.version, file)?;
        if let Some(d) = &self.delegations {
            d.validate(file)?;
        }
        Ok(())
    }
}

/// Parsed, not yet verified metadata: the typed content plus what its
/// signatures cover.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    /// The signed content.
    pub signed: T,
    /// The signatures.
    pub signatures: Vec<Signature>,
    canonical: Vec<u8>,
}

impl<T: Role> Envelope<T> {
    /// Parses `bytes` as metadata of type `T`; `file` names it in errors.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Self, TufError> {
        let value = cjson::parse_strict(bytes).map_err(|e| TufError::malformed(file, e))?;
        let Value::Object(mut obj) = value else {
            return Err(TufError::malformed(file, "not a JSON object"));
        };
        let signed_v = obj
            .remove("signed")
            .ok_or_else(|| TufError::malformed(file, "no \"signed\" field"))?;
        let sigs_v = obj
            .remove("signatures")
            .ok_or_else(|| TufError::malformed(file, "no \"signatures\" field"))?;
        let found = signed_v
            .get("_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if found != T::TYPE {
            return Err(TufError::WrongType {
                file: file.into(),
                expected: T::TYPE.into(),
                found: found.into(),
            });
        }
        let signatures: Vec<Signature> = serde_json::from_value(sigs_v)
            .map_err(|e| TufError::malformed(file, format!("signatures: {e}")))?;
        let mut seen = BTreeSet::new();
        for sig in &signatures {
            if !seen.insert(sig.keyid.as_str()) {
                return Err(TufError::DuplicateSignature {
                    file: file.into(),
                    keyid: sig.keyid.clone(),
                });
            }
        }
        let canonical = cjson::to_canonical(&signed_v).map_err(|e| TufError::malformed(file, e))?;
        let signed: T =
            serde_json::from_value(signed_v).map_err(|e| TufError::malformed(file, e))?;
        signed.validate(file)?;
        Ok(Envelope {
            signed,
            signatures,
            canonical,
        })
    }

    /// Verifies that at least `role.threshold` distinct keys of `role`
    /// (looked up in `keys`) signed. `role_name` and `file` name the
    /// failure.
    pub fn verify(
        &self,
        keys: &BTreeMap<String, Key>,
        role: &RoleKeys,
        role_name: &str,
        file: &str,
    ) -> Result<(), TufError> {
        let mut valid = BTreeSet::new();
        let mut unsupported: Option<(&String, &Key)> = None;
        for keyid in &role.keyids {
            let Some(key) = keys.get(keyid) else { continue };
            for sig in self.signatures.iter().filter(|s| &s.keyid == keyid) {
                match key.verify(&self.canonical, &sig.sig) {
                    Verdict::Valid => {
                        valid.insert(keyid);
                    }
                    Verdict::Unsupported => unsupported = Some((keyid, key)),
                    Verdict::Invalid => {}
                }
            }
        }
        if (valid.len() as u64) >= role.threshold {
            return Ok(());
        }
        if let Some((keyid, key)) = unsupported {
            return Err(TufError::UnsupportedKeyType {
                keyid: keyid.clone(),
                keytype: key.keytype.clone(),
                scheme: key.scheme.clone(),
            });
        }
        Err(TufError::SignatureThreshold {
            file: file.into(),
            role: role_name.into(),
            valid: valid.len(),
            threshold: role.threshold,
        })
    }

    /// The canonical bytes the signatures cover.
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }
}

/// Signs `signed` with `signers` and returns the metadata document (pretty
/// printed JSON, as python-tuf writes it).
pub fn sign_metadata<T: Role>(signed: &T, signers: &[&dyn Signer]) -> Result<Vec<u8>, TufError> {
    let value = serde_json::to_value(signed).map_err(|e| TufError::Signing(e.to_string()))?;
    let canonical = cjson::to_canonical(&value).map_err(|e| TufError::Signing(e.to_string()))?;
    let mut signatures = Vec::new();
    for s in signers {
        signatures.push(Signature {
            keyid: s.public_key().key_id()?,
            sig: hex::encode(s.sign(&canonical)?),
            unrecognized: BTreeMap::new(),
        });
    }
    let doc = serde_json::json!({ "signatures": signatures, "signed": value });
    serde_json::to_vec_pretty(&doc).map_err(|e| TufError::Signing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(path_matches("*.txt", "file1.txt"));
        assert!(!path_matches("*.txt", "dir/file1.txt"));
        assert!(path_matches("dir/*", "dir/x"));
        assert!(path_matches("*/*", "a/b"));
        assert!(path_matches("file?.txt", "file3.txt"));
        assert!(path_matches("file[1-3].txt", "file2.txt"));
        assert!(!path_matches("file[!1-3].txt", "file2.txt"));
        assert!(path_matches("*", "nonexistent artifact"));
        assert!(!path_matches("a", "b"));
    }

    #[test]
    fn hash_prefixes_match_the_target_hash_in_either_case() {
        let target = "apps/app/1.0/app.bin";
        let hash = target_path_hash(target);
        let role = |prefixes: &[&str]| DelegatedRole {
            name: "bin".into(),
            keyids: vec![],
            threshold: 1,
            terminating: true,
            paths: None,
            path_hash_prefixes: Some(prefixes.iter().map(|p| (*p).to_owned()).collect()),
            unrecognized: BTreeMap::new(),
        };
        assert!(role(&[&hash[..2]]).matches(target));
        assert!(role(&["zz", &hash[..3].to_ascii_uppercase()]).matches(target));
        assert!(role(&[""]).matches(target));
        assert!(!role(&[&format!("{hash}0")]).matches(target));
        assert!(!role(&["é"]).matches(target));
        let other = if hash.starts_with('0') { "1" } else { "0" };
        assert!(!role(&[other]).matches(target));
    }

    #[test]
    fn expiry_with_a_fraction_of_a_second_round_trips() {
        // From tough's dubious-role-names targets.json, found by fuzzing:
        // writing the expiry dropped the fraction, so re-signed metadata
        // expired earlier than the original.
        let text = "3021-01-27T00:57:00.468918Z";
        let e: Expiry = serde_json::from_value(Value::String(text.into())).unwrap();
        assert_eq!(e.0.nanosecond(), 468_918_000);
        assert_eq!(e.to_tuf_string(), text);
        let back: Expiry = serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap();
        assert_eq!(back, e);
        let whole: Expiry =
            serde_json::from_value(Value::String("2030-01-01T00:00:00+01:00".into())).unwrap();
        assert_eq!(whole.to_tuf_string(), "2029-12-31T23:00:00Z");
    }

    #[test]
    fn expiry_outside_the_utc_date_range_is_refused() {
        // 9999-12-31T23:59:59-01:00 is in year 10000 in UTC.
        let err =
            serde_json::from_value::<Expiry>(Value::String("9999-12-31T23:59:59-01:00".into()))
                .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let t = parse_time("9999-12-31T23:59:59-01:00").unwrap();
        assert_eq!(format_time(t), "9999-12-31T23:59:59-01:00");
    }

    #[test]
    fn succinct_bins() {
        let s = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 8,
            name_prefix: "bin".into(),
            unrecognized: BTreeMap::new(),
        };
        let r = s.role_for("target");
        assert!(s.is_bin(&r));
        assert!(!s.is_bin("bin-100"));
        assert_eq!(r.len(), 6);
    }
}
