//! Fuzzes the patch appliers (zstd and bsdiff): the input as a patch
//! against a fixed base (never more bytes than the limit, a result only
//! when it decodes), and the input split into an old and a new file (a
//! patch of either format made from them applies back to the new file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upkeep_core::delta::{apply_bsdiff_patch, apply_patch, make_bsdiff_patch, make_patch};

const BASE: &[u8] = b"the old release of the file, with some text that a patch may refer to \
    again and again and again, and a few numbers: 0123456789";

fuzz_target!(|data: &[u8]| {
    // Any bytes as a patch: refused, or at most `limit` bytes out.
    let limit = 4096;
    let mut out = Vec::new();
    if let Ok(made) = apply_patch(BASE, data, &mut out, limit) {
        assert!(made.length <= limit);
        assert_eq!(made.length, out.len() as u64);
    }
    let mut out = Vec::new();
    if let Ok(made) = apply_bsdiff_patch(BASE, data, &mut out, limit) {
        assert!(made.length <= limit);
        assert_eq!(made.length, out.len() as u64);
    }

    // The input as two files: the patch between them rebuilds the second.
    if data.len() > 2 {
        let split = usize::from(data[0]) % data.len();
        let (old, new) = data[1..].split_at(split.min(data.len() - 1));
        let patch = make_patch(old, new).expect("a patch");
        let mut rebuilt = Vec::new();
        let made = apply_patch(old, &patch[..], &mut rebuilt, new.len() as u64).expect("it applies");
        assert_eq!(rebuilt, new);
        assert_eq!(made.length, new.len() as u64);
        let patch = make_bsdiff_patch(old, new).expect("a bsdiff patch");
        let mut rebuilt = Vec::new();
        apply_bsdiff_patch(old, &patch[..], &mut rebuilt, new.len() as u64).expect("it applies");
        assert_eq!(rebuilt, new);
    }
});
