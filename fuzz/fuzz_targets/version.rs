//! Fuzzes `upkeep_core::version::Version` parsing, display, ordering and
//! prefix matching.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use upkeep_core::version::Version;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The input may hold two versions separated by a space.
    let (left, right) = text.split_once(' ').unwrap_or((&text, ""));

    let Ok(a) = left.parse::<Version>() else {
        // Prefix matching takes any text and must not panic.
        let one: Version = "1.2.3.4".parse().expect("a valid version");
        let _ = one.matches_prefix(left);
        return;
    };

    // Display round-trips, keeping the named parts.
    let shown = a.to_string();
    let back: Version = shown.parse().expect("a displayed version parses");
    assert_eq!(back, a);
    assert_eq!(back.named_parts(), a.named_parts());
    assert_eq!(Version::new(a.named_parts()).as_ref(), Ok(&a));
    assert!(a.matches_prefix(&shown), "{shown} must match its own text");
    assert!(a.matches_prefix(""));

    if let Ok(b) = right.parse::<Version>() {
        // Ordering is the ordering of the four parts, and consistent.
        assert_eq!(a.cmp(&b), a.parts().cmp(&b.parts()));
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
        let _ = a.matches_prefix(right);
        if b.matches_prefix(left) {
            // Every part a names equals b's part.
            for (i, p) in a.named_parts().iter().enumerate() {
                assert_eq!(*p, b.parts()[i]);
            }
        }
    }
});
