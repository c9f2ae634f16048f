//! Writing a command line into `ExecStart=` so systemd reads back exactly
//! the executable and arguments given (systemd.service "Command lines",
//! systemd.syntax "Quoting").
//!
//! systemd splits the value into words, unquotes and C-unescapes each,
//! expands `%` specifiers in every word and `$VAR` / `${VAR}` in the
//! arguments, and takes an unquoted lone `;` as a command separator. So a
//! word made only of plain characters is written bare, and any other is
//! written in double quotes with:
//!
//! | character | written |
//! |---|---|
//! | `\` | `\\` |
//! | `"` | `\"` |
//! | `%` | `%%` (a specifier otherwise) |
//! | `$` (arguments) | `$$` (a variable otherwise) |
//! | newline, tab, carriage return | `\n`, `\t`, `\r` |
//! | other control characters | `\xNN` |
//!
//! Everything else (spaces, `'`, `;`, non-ASCII) stands as is inside the
//! quotes; a quoted `";"` is an argument, not a separator.
//!
//! The executable must be an absolute, normalised path (systemd refuses
//! others) without control characters (refused too) and without `$`
//! (systemd substitutes variables in the arguments but not in the path, so
//! no spelling of `$` is read back the same in both).

use crate::error::SystemdError;

/// The `ExecStart=` value running `exe` with `args`.
pub fn exec_command_line(exe: &str, args: &[String]) -> Result<String, SystemdError> {
    check_executable(exe)?;
    let mut line = word(exe, false);
    for arg in args {
        line.push(' ');
        line.push_str(&word(arg, true));
    }
    Ok(line)
}

/// Checks that `exe` can be the program of a systemd command line.
pub fn check_executable(exe: &str) -> Result<(), SystemdError> {
    let bad = |reason| SystemdError::BadExecutable {
        exe: exe.to_owned(),
        reason,
    };
    let Some(rest) = exe.strip_prefix('/') else {
        return Err(bad("must be absolute"));
    };
    if rest
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad(
            "must be normalised (no empty, '.' or '..' components, no trailing '/')",
        ));
    }
    if exe.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    if exe.contains('$') {
        return Err(bad(
            "must not contain '$' (systemd cannot take it literally in ExecStart=)",
        ));
    }
    Ok(())
}

/// `%` written so specifier expansion gives it back (for values such as
/// `Description=` that are not command lines).
pub fn escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word: bare if it is made of plain characters only, else quoted.
fn word(text: &str, argument: bool) -> String {
    if !text.is_empty() && text.bytes().all(is_plain) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if argument => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters with no meaning to systemd's command-line parser.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'/' | b'.' | b'_' | b'-' | b'+' | b'=' | b':' | b',' | b'@'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(exe: &str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        exec_command_line(exe, &args).unwrap()
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(
            line(
                "/opt/upkeep/versions/1.2.0/upkeep",
                &["wake", "--root", "/var/lib/upkeep", "--x=a,b:c@d+e"]
            ),
            "/opt/upkeep/versions/1.2.0/upkeep wake --root /var/lib/upkeep --x=a,b:c@d+e"
        );
        assert_eq!(line("/usr/bin/upkeep", &[]), "/usr/bin/upkeep");
    }

    #[test]
    fn spaces_and_empty_words_are_quoted() {
        assert_eq!(
            line("/opt/My Apps/upkeep", &["wake", "", "/srv/a b"]),
            r#""/opt/My Apps/upkeep" wake "" "/srv/a b""#
        );
    }

    #[test]
    fn specifiers_variables_and_escapes() {
        assert_eq!(line("/opt/100%/up", &[]), r#""/opt/100%%/up""#);
        assert_eq!(
            line(
                "/u",
                &["$HOME", "${X}", "50%", "a\"b", "back\\slash", "it's"]
            ),
            r#"/u "$$HOME" "$${X}" "50%%" "a\"b" "back\\slash" "it's""#
        );
        assert_eq!(
            line("/u", &["l1\nl2", "t\tr\r", "bell\u{7}", "del\u{7f}"]),
            r#"/u "l1\nl2" "t\tr\r" "bell\x07" "del\x7f""#
        );
    }

    #[test]
    fn semicolons_are_arguments_not_separators() {
        assert_eq!(line("/u", &[";", "a;b"]), r#"/u ";" "a;b""#);
    }

    #[test]
    fn non_ascii_stays_literal_inside_quotes() {
        assert_eq!(
            line("/opt/\u{e9}t\u{e9}/up", &["\u{65e5}\u{672c}"]),
            "\"/opt/\u{e9}t\u{e9}/up\" \"\u{65e5}\u{672c}\""
        );
    }

    #[test]
    fn executable_rules() {
        let why = |exe: &str| exec_command_line(exe, &[]).unwrap_err().to_string();
        assert_eq!(
            why("upkeep"),
            "executable path \"upkeep\": must be absolute"
        );
        assert!(why("").contains("must be absolute"));
        assert!(why("/opt//upkeep").contains("normalised"));
        assert!(why("/opt/./upkeep").contains("normalised"));
        assert!(why("/opt/../upkeep").contains("normalised"));
        assert!(why("/opt/upkeep/").contains("normalised"));
        assert!(why("/").contains("normalised"));
        assert!(why("/opt/up\nkeep").contains("control"));
        assert!(why("/opt/up\0keep").contains("control"));
        assert!(why("/opt/$x/upkeep").contains("'$'"));
    }

    #[test]
    fn specifier_escape() {
        assert_eq!(escape_specifiers("100% sure"), "100%% sure");
    }
}
