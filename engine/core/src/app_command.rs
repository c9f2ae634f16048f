//! App commands (Omaha's "application commands"): named command lines an
//! app registers, with `%1`..`%9` placeholders a caller fills in when it
//! asks for the command to run. The command line is split into arguments
//! once, at registration; a parameter then replaces its placeholder inside
//! one argument and can never become an argument of its own or the
//! program, and no shell is involved.
//!
//! A command comes from the machine's registration (its program an
//! absolute path) or from a release, in the signed targets metadata (its
//! program a path inside the app's live version, `<install-dir>/current`).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::omaha::split_args;

/// The most parameters a command takes (`%1`..`%9`).
pub const MAX_PARAMETERS: usize = 9;

/// A registered command: the program and its argument templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCommand {
    /// The program without placeholders: an absolute path, or (a
    /// release's command) a path inside the app's live version.
    pub executable: PathBuf,
    /// The arguments, with `%1`..`%9` placeholders and `%%` for a `%`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
}

/// Why a command line or a call's parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppCommandError {
    /// The command line is empty.
    #[error("the command line is empty")]
    Empty,
    /// The command line's quoting is broken.
    #[error("the command line cannot be split into arguments: {0}")]
    Quoting(String),
    /// The program is not an absolute path.
    #[error("the program {0:?} is not an absolute path")]
    NotAbsolute(String),
    /// A release's program leaves the app's directory.
    #[error(
        "the program {0:?} of a release's command must be a path inside the app (relative, without ..)"
    )]
    OutsideApp(String),
    /// The program has a placeholder (a parameter could change it).
    #[error("the program {0:?} has a %: parameters may only go into arguments")]
    PlaceholderInProgram(String),
    /// A `%` that is not `%1`..`%9` or `%%`.
    #[error("argument {argument:?}: {found:?} is not a placeholder (use %1..%9, or %% for a %)")]
    BadPlaceholder {
        /// The argument as registered.
        argument: String,
        /// What follows the `%`.
        found: String,
    },
    /// The call gives fewer parameters than the command uses.
    #[error("the command uses %{needed} but {given} parameter(s) were given")]
    MissingParameter {
        /// The highest placeholder used.
        needed: usize,
        /// The parameters given.
        given: usize,
    },
    /// The call gives more parameters than the command uses.
    #[error("the command takes {takes} parameter(s) but {given} were given")]
    TooManyParameters {
        /// The highest placeholder used.
        takes: usize,
        /// The parameters given.
        given: usize,
    },
    /// A parameter with a control character or a `%`.
    #[error("parameter {index} {value:?}: control characters and % are not allowed")]
    BadParameter {
        /// Its number (1-based).
        index: usize,
        /// The value.
        value: String,
    },
    /// A parameter that would be a whole argument starting with `-`: it
    /// would add an option to the command.
    #[error("parameter {index} {value:?} would be an option of its own (it starts with -)")]
    OptionParameter {
        /// Its number (1-based).
        index: usize,
        /// The value.
        value: String,
    },
}

/// One piece of an argument template.
enum Piece<'a> {
    Text(&'a str),
    Percent,
    Parameter(usize),
}

/// The pieces of `argument`, or why it is not a template.
fn pieces(argument: &str) -> Result<Vec<Piece<'_>>, AppCommandError> {
    let mut out = Vec::new();
    let mut rest = argument;
    while let Some(at) = rest.find('%') {
        if at > 0 {
            out.push(Piece::Text(&rest[..at]));
        }
        let after = &rest[at + 1..];
        let next = after.chars().next();
        match next {
            Some('%') => out.push(Piece::Percent),
            Some(c @ '1'..='9') => out.push(Piece::Parameter(c as usize - '0' as usize)),
            _ => {
                return Err(AppCommandError::BadPlaceholder {
                    argument: argument.to_owned(),
                    found: format!("%{}", next.map(String::from).unwrap_or_default()),
                });
            }
        }
        rest = &after[1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

impl AppCommand {
    /// Reads a command line as registered: the program (absolute, no `%`)
    /// and its arguments, quoted as Omaha quotes arguments.
    pub fn parse(command_line: &str) -> Result<AppCommand, AppCommandError> {
        Self::parse_checked(command_line, |program| {
            if Path::new(program).is_absolute() {
                Ok(())
            } else {
                Err(AppCommandError::NotAbsolute(program.to_owned()))
            }
        })
    }

    /// Parses a command a release brings (`commands` in its signed
    /// metadata): as [`AppCommand::parse`], but the program is a path
    /// inside the app's live version: relative, no `..`, no root.
    pub fn parse_release(command_line: &str) -> Result<AppCommand, AppCommandError> {
        Self::parse_checked(command_line, |program| {
            if Path::new(program)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            {
                Ok(())
            } else {
                Err(AppCommandError::OutsideApp(program.to_owned()))
            }
        })
    }

    /// Splits `command_line`, checks the program with `program_ok` and
    /// every argument's placeholders.
    fn parse_checked(
        command_line: &str,
        program_ok: impl Fn(&str) -> Result<(), AppCommandError>,
    ) -> Result<AppCommand, AppCommandError> {
        let mut words = split_args(command_line)
            .map_err(|e| AppCommandError::Quoting(e.to_string()))?
            .into_iter();
        let program = words.next().ok_or(AppCommandError::Empty)?;
        if program.contains('%') {
            return Err(AppCommandError::PlaceholderInProgram(program));
        }
        program_ok(&program)?;
        let command = AppCommand {
            executable: PathBuf::from(program),
            arguments: words.collect(),
        };
        for a in &command.arguments {
            pieces(a)?;
        }
        Ok(command)
    }

    /// The program to run: absolute as registered, or a release's program
    /// inside `live` (the app's `current` directory).
    pub fn program_in(&self, live: &Path) -> PathBuf {
        if self.executable.is_absolute() {
            self.executable.clone()
        } else {
            live.join(&self.executable)
        }
    }

    /// How many parameters the command takes: its highest placeholder.
    pub fn parameters(&self) -> usize {
        self.arguments
            .iter()
            .filter_map(|a| pieces(a).ok())
            .flatten()
            .filter_map(|p| match p {
                Piece::Parameter(n) => Some(n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The arguments with `parameters` in place of their placeholders.
    /// Exactly as many parameters as the command takes are needed; each is
    /// checked (no control characters, no `%`, no option of its own).
    pub fn arguments_with(&self, parameters: &[String]) -> Result<Vec<String>, AppCommandError> {
        let takes = self.parameters();
        if parameters.len() < takes {
            return Err(AppCommandError::MissingParameter {
                needed: takes,
                given: parameters.len(),
            });
        }
        if parameters.len() > takes {
            return Err(AppCommandError::TooManyParameters {
                takes,
                given: parameters.len(),
            });
        }
        for (i, value) in parameters.iter().enumerate() {
            if value.chars().any(|c| c.is_control() || c == '%') {
                return Err(AppCommandError::BadParameter {
                    index: i + 1,
                    value: value.clone(),
                });
            }
        }
        let mut out = Vec::with_capacity(self.arguments.len());
        for template in &self.arguments {
            let pieces = pieces(template)?;
            if let [Piece::Parameter(n)] = pieces.as_slice()
                && parameters[n - 1].starts_with('-')
            {
                return Err(AppCommandError::OptionParameter {
                    index: *n,
                    value: parameters[n - 1].clone(),
                });
            }
            let mut argument = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => argument.push_str(t),
                    Piece::Percent => argument.push('%'),
                    Piece::Parameter(n) => argument.push_str(&parameters[n - 1]),
                }
            }
            out.push(argument);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parameters_fill_their_placeholders_inside_one_argument() {
        let c = AppCommand::parse(r#"/opt/app/bin/tool --file=%1 "two words" %2 100%%"#).unwrap();
        assert_eq!(c.executable, PathBuf::from("/opt/app/bin/tool"));
        assert_eq!(c.parameters(), 2);
        let argv = c
            .arguments_with(&params(&["a b; rm -rf /", "x\"y"]))
            .unwrap();
        assert_eq!(argv, ["--file=a b; rm -rf /", "two words", "x\"y", "100%"]);
    }

    #[test]
    fn command_lines_that_could_be_bent_are_refused_at_registration() {
        use AppCommandError::*;
        assert_eq!(AppCommand::parse("  "), Err(Empty));
        assert!(matches!(AppCommand::parse("tool %1"), Err(NotAbsolute(_))));
        assert!(matches!(
            AppCommand::parse("/opt/%1/tool"),
            Err(PlaceholderInProgram(_))
        ));
        assert!(matches!(
            AppCommand::parse("/bin/tool %x"),
            Err(BadPlaceholder { .. })
        ));
        assert!(matches!(
            AppCommand::parse("/bin/tool 50%"),
            Err(BadPlaceholder { .. })
        ));
        assert!(matches!(
            AppCommand::parse("/bin/tool %0"),
            Err(BadPlaceholder { .. })
        ));
        assert!(matches!(
            AppCommand::parse("/bin/tool \"open"),
            Err(Quoting(_))
        ));
    }

    #[test]
    fn parameters_that_would_inject_are_refused() {
        use AppCommandError::*;
        let c = AppCommand::parse("/bin/tool --name=%1 %2").unwrap();
        assert!(matches!(
            c.arguments_with(&params(&["a"])),
            Err(MissingParameter {
                needed: 2,
                given: 1
            })
        ));
        assert!(matches!(
            c.arguments_with(&params(&["a", "b", "c"])),
            Err(TooManyParameters { takes: 2, given: 3 })
        ));
        assert!(matches!(
            c.arguments_with(&params(&["a\nb", "c"])),
            Err(BadParameter { index: 1, .. })
        ));
        assert!(matches!(
            c.arguments_with(&params(&["a", "%1"])),
            Err(BadParameter { index: 2, .. })
        ));
        assert!(matches!(
            c.arguments_with(&params(&["a", "--evil"])),
            Err(OptionParameter { index: 2, .. })
        ));
        // Inside an argument a leading - is just text.
        assert_eq!(
            c.arguments_with(&params(&["-x", "ok"])).unwrap(),
            ["--name=-x", "ok"]
        );
        let none = AppCommand::parse("/bin/true").unwrap();
        assert_eq!(none.arguments_with(&[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_release_command_runs_a_program_inside_the_app() {
        let c = AppCommand::parse_release("bin/repair --level=%1").unwrap();
        assert_eq!(
            c.program_in(Path::new("/opt/app/current")),
            Path::new("/opt/app/current/bin/repair")
        );
        assert_eq!(c.parameters(), 1);
        for bad in ["/bin/sh -c x", "../bin/sh", "bin/../../x", "./bin/x", ""] {
            assert!(AppCommand::parse_release(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            AppCommand::parse_release("bin/%1"),
            Err(AppCommandError::PlaceholderInProgram(_))
        ));
    }
}
