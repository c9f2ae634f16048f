//! Percent-encoding of tag values: `%XX` is the byte `0xXX`; every other
//! byte stands for itself (`+` included: a tag is not a form).

/// Why a value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// A `%` at this byte offset of the value is not followed by two hex
    /// digits.
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes `%XX` escapes.
pub(crate) fn decode(value: &str) -> Result<String, Undecodable> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Undecodable::BadEscape(i))?;
            let high = hex_digit(hex[0]).ok_or(Undecodable::BadEscape(i))?;
            let low = hex_digit(hex[1]).ok_or(Undecodable::BadEscape(i))?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Undecodable::NotUtf8)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes a value so that [`decode`] gives it back and the tag's own
/// separators (`&`, `=`, `%`), spaces and control characters cannot
/// appear in it. Letters, digits and `-_.~{}` stay as they are.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~{}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_the_rest() {
        assert_eq!(decode("My%20App").unwrap(), "My App");
        assert_eq!(decode("a+b").unwrap(), "a+b");
        assert_eq!(decode("%7b%7D").unwrap(), "{}");
        assert_eq!(decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(decode("plain").unwrap(), "plain");
    }

    #[test]
    fn refuses_broken_escapes() {
        assert_eq!(decode("50%"), Err(Undecodable::BadEscape(2)));
        assert_eq!(decode("x%4"), Err(Undecodable::BadEscape(1)));
        assert_eq!(decode("%zz"), Err(Undecodable::BadEscape(0)));
        assert_eq!(decode("%FF%FE"), Err(Undecodable::NotUtf8));
    }

    #[test]
    fn encoding_round_trips() {
        for v in ["My App & Co", "50%=half", "{GUID-1}", "é\u{1}\n", ""] {
            let e = encode(v);
            assert!(!e.contains(['&', '=', ' ', '\n']), "{e}");
            assert_eq!(decode(&e).unwrap(), v);
        }
    }
}
