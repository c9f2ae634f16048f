//! Installer arguments in the one string Omaha carries them in (the
//! manifest's `arguments`, a 4.0 operation's `arguments`): [`join_args`]
//! quotes a list the way the reference server writes it, [`split_args`]
//! reads it back, so an argument with a space arrives whole.
//!
//! The quoting: an argument that is not empty and has no space, tab, `"`
//! or `\` is written as it is; any other in double quotes, with `"` and
//! `\` preceded by a backslash. Arguments are separated by spaces.

/// Why [`split_args`] refused a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A double quote opened at this byte offset is never closed.
    #[error("installer arguments {text:?}: the quote at byte {at} is not closed")]
    UnclosedQuote {
        /// The whole string.
        text: String,
        /// The byte offset of the opening quote.
        at: usize,
    },
    /// The string ends in a backslash inside quotes.
    #[error("installer arguments {text:?}: a backslash ends the string")]
    TrailingBackslash {
        /// The whole string.
        text: String,
    },
}

/// Joins installer arguments into one command-line string.
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && !a.contains([' ', '\t', '"', '\\']) {
                a.clone()
            } else {
                let mut q = String::from("\"");
                for c in a.chars() {
                    if c == '"' || c == '\\' {
                        q.push('\\');
                    }
                    q.push(c);
                }
                q.push('"');
                q
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a command-line string written by [`join_args`] (or by hand in
/// the same quoting) back into its arguments. Outside quotes a backslash
/// is an ordinary character, so a Windows path given unquoted stays whole.
pub fn split_args(text: &str) -> Result<Vec<String>, ArgsError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut arg = String::new();
        while let Some((at, c)) = chars.next_if(|(_, c)| *c != ' ' && *c != '\t') {
            if c != '"' {
                arg.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    None => {
                        return Err(ArgsError::UnclosedQuote {
                            text: text.to_owned(),
                            at,
                        });
                    }
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, escaped)) => arg.push(escaped),
                        None => {
                            return Err(ArgsError::TrailingBackslash {
                                text: text.to_owned(),
                            });
                        }
                    },
                    Some((_, other)) => arg.push(other),
                }
            }
        }
        out.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn joined_arguments_split_back_whole() {
        for args in [
            strings(&[]),
            strings(&["--mode", "quiet"]),
            strings(&["--dir", "C:\\Program Files\\App", ""]),
            strings(&["say \"hi\"", "tab\there", "back\\slash", "--x=1 2"]),
        ] {
            let joined = join_args(&args);
            assert_eq!(split_args(&joined).unwrap(), args, "{joined}");
        }
    }

    #[test]
    fn plain_strings_split_on_blanks() {
        assert_eq!(
            split_args("  -a\t b  C:\\dir\\x ").unwrap(),
            strings(&["-a", "b", "C:\\dir\\x"])
        );
        assert_eq!(
            split_args("--name=\"two words\"").unwrap(),
            strings(&["--name=two words"])
        );
    }

    #[test]
    fn broken_quoting_is_refused() {
        assert!(matches!(
            split_args("a \"b c"),
            Err(ArgsError::UnclosedQuote { at: 2, .. })
        ));
        assert!(matches!(
            split_args("\"b\\"),
            Err(ArgsError::TrailingBackslash { .. })
        ));
    }
}
