//! Fuzzes TUF metadata parsing (`tuf::Envelope::from_bytes` for root,
//! timestamp, snapshot and targets, strict JSON and canonical JSON in
//! `tuf::cjson`) and the trust checks behind it (`tuf::TrustedSet`:
//! signatures, thresholds, expiry, delegations).
//!
//! Beyond "no panic":
//! * canonical JSON parses back to the value it was written from (when no
//!   string holds a control character, which canonical JSON writes raw) and
//!   is a fixed point;
//! * parsed metadata, re-signed with a fixed ed25519 key and written with
//!   `sign_metadata`, parses back to the same metadata and verifies;
//! * loaded into a trusted set whose root trusts that key (and, for
//!   snapshot and targets, behind a timestamp and snapshot that list it),
//!   the re-signed metadata is accepted when it has not expired and refused
//!   as expired when it has, and for no other reason.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use upkeep_core::tuf::cjson::{parse_strict, to_canonical};
use upkeep_core::tuf::metadata::{Role, SPEC_VERSION, parse_time};
use upkeep_core::tuf::trusted::TimestampUpdate;
use upkeep_core::tuf::{
    Ed25519Signer, Envelope, Expiry, MetaFile, RoleKeys, Root, Signer, Snapshot, Targets,
    Timestamp, TrustedSet, TufError, sign_metadata,
};

struct Fixture {
    signer: Ed25519Signer,
    root: Root,
    root_bytes: Vec<u8>,
    /// The instant expiry is checked against.
    now: Expiry,
    /// Far after `now`: the expiry of the metadata the fixture writes.
    later: Expiry,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let signer = Ed25519Signer::from_seed(&[9; 32]);
    let keyid = signer.key_id();
    let later = Expiry(parse_time("2100-01-01T00:00:00Z").expect("a valid time"));
    let root = Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: later,
        consistent_snapshot: false,
        keys: BTreeMap::from([(keyid.clone(), signer.public_key().clone())]),
        roles: ["root", "timestamp", "snapshot", "targets"]
            .into_iter()
            .map(|r| (r.to_owned(), RoleKeys::new(vec![keyid.clone()], 1)))
            .collect(),
        unrecognized: BTreeMap::new(),
    };
    let root_bytes = sign_metadata(&root, &[&signer]).expect("the fixed root signs");
    Fixture {
        signer,
        root,
        root_bytes,
        now: Expiry(parse_time("2026-01-01T00:00:00Z").expect("a valid time")),
        later,
    }
});

fn trusted() -> TrustedSet {
    let f = &*FIXTURE;
    TrustedSet::new(&f.root_bytes, f.now.0).expect("the fixed root is trusted")
}

fn sign<T: Role>(signed: &T) -> Vec<u8> {
    sign_metadata(signed, &[&FIXTURE.signer]).expect("parsed metadata signs")
}

/// Whether any string (or object key) in `v` holds a control character.
fn has_control(v: &Value) -> bool {
    let ctl = |s: &str| s.chars().any(|c| (c as u32) < 0x20);
    match v {
        Value::String(s) => ctl(s),
        Value::Array(items) => items.iter().any(has_control),
        Value::Object(map) => map.iter().any(|(k, v)| ctl(k) || has_control(v)),
        _ => false,
    }
}

fn canonical_json(data: &[u8]) {
    let Ok(value) = parse_strict(data) else {
        return;
    };
    let Ok(canonical) = to_canonical(&value) else {
        return;
    };
    match parse_strict(&canonical) {
        Ok(back) => {
            assert_eq!(back, value, "canonical JSON changed the value");
            assert_eq!(
                to_canonical(&back).ok().as_deref(),
                Some(canonical.as_slice())
            );
        }
        Err(e) => assert!(
            has_control(&value),
            "canonical JSON does not parse: {e}\n{}",
            String::from_utf8_lossy(&canonical)
        ),
    }
}

/// Parses `data` as `T`; when it parses, checks that re-signed and written
/// it parses to the same metadata and verifies. Returns the metadata and
/// the re-signed document.
fn envelope<T: Role + PartialEq + Debug>(data: &[u8]) -> Option<(T, Vec<u8>)> {
    let f = &*FIXTURE;
    let env = Envelope::<T>::from_bytes(data, "fuzz.json").ok()?;
    let role = f.root.role(T::TYPE).expect("the fixed root has every role");
    // The input's own signatures never verify against the fixed key (the
    // fuzzer cannot forge ed25519), but checking them must not panic.
    assert!(
        env.verify(&f.root.keys, role, T::TYPE, "fuzz.json")
            .is_err()
    );

    let doc = sign(&env.signed);
    let again = match Envelope::<T>::from_bytes(&doc, "fuzz.json") {
        Ok(e) => e,
        Err(e) => panic!(
            "written {} metadata does not parse: {e}\n{}",
            T::TYPE,
            String::from_utf8_lossy(&doc)
        ),
    };
    assert_eq!(again.signed, env.signed, "{} round trip changed", T::TYPE);
    if let Err(e) = again.verify(&f.root.keys, role, T::TYPE, "fuzz.json") {
        panic!("metadata signed with the trusted key does not verify: {e}");
    }
    Some((env.signed, doc))
}

/// Accepted when not expired, refused as expired when expired.
fn expect_accepted(result: Result<(), TufError>, expires: Expiry, what: &str) {
    let expired = expires <= FIXTURE.now;
    match result {
        Ok(()) if !expired => {}
        Err(TufError::MetadataExpired { .. }) if expired => {}
        other => panic!("{what} (expired: {expired}) gave {other:?}"),
    }
}

fn timestamp_for(snapshot_doc: &[u8], snapshot_version: u64) -> Vec<u8> {
    sign(&Timestamp {
        type_: "timestamp".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: FIXTURE.later,
        meta: BTreeMap::from([(
            "snapshot.json".to_owned(),
            MetaFile::with_hashes(snapshot_version, snapshot_doc),
        )]),
        unrecognized: BTreeMap::new(),
    })
}

fn load_timestamp(set: &mut TrustedSet, doc: &[u8]) {
    let r = set.update_timestamp(doc, "timestamp.json");
    assert!(matches!(r, Ok(TimestampUpdate::Accepted)), "{r:?}");
}

fn check_root(data: &[u8]) {
    let f = &*FIXTURE;
    // Bootstrapping from the input and rotating to it never panic.
    if let Ok(set) = TrustedSet::new(data, f.now.0) {
        let env = Envelope::<Root>::from_bytes(data, "root.json").expect("a trusted root parses");
        assert_eq!(set.root(), &env.signed);
    }
    let _ = trusted().update_root(data, "2.root.json");
    if let Some((root, doc)) = envelope::<Root>(data) {
        // Rotation to the re-signed root: it is signed by the trusted key,
        // so only its version and its own root role can refuse it.
        let mut set = trusted();
        if set.update_root(&doc, "2.root.json").is_ok() {
            assert_eq!(root.version, 2);
            assert_eq!(set.root(), &root);
        }
    }
}

fn check_timestamp(data: &[u8]) {
    let Some((ts, doc)) = envelope::<Timestamp>(data) else {
        return;
    };
    let mut set = trusted();
    let r = set
        .update_timestamp(&doc, "timestamp.json")
        .map(|u| assert_eq!(u, TimestampUpdate::Accepted));
    expect_accepted(r, ts.expires, "timestamp");
    assert!(ts.snapshot_meta().is_some());
}

fn check_snapshot(data: &[u8]) {
    let Some((snap, doc)) = envelope::<Snapshot>(data) else {
        return;
    };
    let mut set = trusted();
    load_timestamp(&mut set, &timestamp_for(&doc, snap.version));
    let r = set.update_snapshot(&doc, "snapshot.json", false);
    expect_accepted(r, snap.expires, "snapshot");
}

fn check_targets(data: &[u8]) {
    let Some((targets, doc)) = envelope::<Targets>(data) else {
        return;
    };
    let f = &*FIXTURE;
    let snapshot = sign(&Snapshot {
        type_: "snapshot".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: f.later,
        meta: BTreeMap::from([(
            "targets.json".to_owned(),
            MetaFile::with_hashes(targets.version, &doc),
        )]),
        unrecognized: BTreeMap::new(),
    });
    let mut set = trusted();
    load_timestamp(&mut set, &timestamp_for(&snapshot, 1));
    set.update_snapshot(&snapshot, "snapshot.json", false)
        .expect("the fixture's snapshot is accepted");
    let r = set.update_targets(&doc, "targets", "root", "targets.json");
    expect_accepted(r, targets.expires, "targets");

    for file in targets.targets.values() {
        let _ = file.prefix_hash();
    }
    if let Some(d) = &targets.delegations {
        for target in ["file1.txt", "dir/sub/file-name.tar.gz", ""] {
            for visit in d.roles_for_target(target) {
                let keys = d
                    .role_keys(&visit.name)
                    .expect("a role to visit is delegated");
                assert_eq!(keys.threshold, visit.threshold);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    canonical_json(data);
    check_root(data);
    check_timestamp(data);
    check_snapshot(data);
    check_targets(data);
});
