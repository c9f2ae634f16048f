//! Random 128-bit session and request ids.

/// A random 128-bit id formatted like a braced GUID,
/// `{xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx}` (a version-4 UUID, lowercase).
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format_id(bytes))
}

/// Formats 16 bytes as a braced version-4 UUID.
pub(crate) fn format_id(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_guid(s: &str) -> bool {
        let b = s.as_bytes();
        if b.len() != 38 || b[0] != b'{' || b[37] != b'}' {
            return false;
        }
        let groups: Vec<&str> = s[1..37].split('-').collect();
        groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && groups
                .iter()
                .all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()))
    }

    #[test]
    fn ids_look_like_guids_and_differ() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert!(is_guid(&a), "{a}");
        assert!(is_guid(&b), "{b}");
        assert_ne!(a, b);
        assert_eq!(&a[15..16], "4", "version nibble in {a}");
    }

    #[test]
    fn formatting_is_fixed() {
        assert_eq!(
            format_id([0xff; 16]),
            "{ffffffff-ffff-4fff-bfff-ffffffffffff}"
        );
        assert_eq!(format_id([0; 16]), "{00000000-0000-4000-8000-000000000000}");
    }
}
