//! The encoding of an argument list in one UTF-8 string: every argument
//! followed by one NUL byte.
//!
//! NUL cannot occur inside a command-line argument on any platform, unlike
//! newline, so it separates without escaping. `[]` is the empty string,
//! `[""]` is `"\0"`, `["wake", "--root", "/srv"]` is
//! `"wake\0--root\0/srv\0"`. On decoding, the terminator of the last
//! argument may be left out (`"a\0b"` is `["a", "b"]`), which is lenient for
//! hand-written callers and still unambiguous.

/// An argument contains a NUL byte and so cannot be passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {index} contains a NUL byte")]
pub struct NulInArgument {
    /// The position of the argument in the list.
    pub index: usize,
}

/// Encodes `args` as each argument followed by NUL.
pub fn encode_args<S: AsRef<str>>(args: &[S]) -> Result<String, NulInArgument> {
    let mut out = String::new();
    for (index, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        if arg.contains('\0') {
            return Err(NulInArgument { index });
        }
        out.push_str(arg);
        out.push('\0');
    }
    Ok(out)
}

/// Decodes an argument list written by [`encode_args`] (or with the last
/// terminator left out).
pub fn decode_args(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix('\0').unwrap_or(text);
    body.split('\0').map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases: &[&[&str]] = &[
            &[],
            &[""],
            &["", ""],
            &["wake"],
            &["wake", "--root", "/srv/my app"],
            &["a\nb", "", "c d"],
        ];
        for case in cases {
            let text = encode_args(case).unwrap();
            assert_eq!(decode_args(&text), *case, "{text:?}");
        }
    }

    #[test]
    fn encoding_is_nul_terminated() {
        assert_eq!(encode_args(&["a", "b"]).unwrap(), "a\0b\0");
        assert_eq!(encode_args::<&str>(&[]).unwrap(), "");
        assert_eq!(encode_args(&[""]).unwrap(), "\0");
    }

    #[test]
    fn last_terminator_may_be_omitted() {
        assert_eq!(decode_args("a\0b"), ["a", "b"]);
        assert_eq!(decode_args("a"), ["a"]);
    }

    #[test]
    fn nul_inside_an_argument_is_refused() {
        assert_eq!(
            encode_args(&["ok", "bad\0arg"]),
            Err(NulInArgument { index: 1 })
        );
    }
}
