//! App ids as the client stores them: lower case (Omaha ids compare
//! case-insensitively) and safe as directory names.

/// An app id that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "app id {0:?} is not valid: use 1 to 128 ASCII letters, digits, '.', '_', '-', '{{' or '}}', not starting with '.'"
)]
pub struct InvalidAppId(pub String);

/// Checks `id` and returns it in lower case. App ids become directory
/// names: ASCII letters, digits and `._-{}` only, not starting with `.`.
pub fn check_app_id(id: &str) -> Result<String, InvalidAppId> {
    let lower = id.trim().to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 128
        || lower.starts_with('.')
        || !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-{}".contains(&b))
    {
        return Err(InvalidAppId(id.to_owned()));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_lower_case_and_path_safe() {
        assert_eq!(check_app_id("Org.Example.App").unwrap(), "org.example.app");
        assert_eq!(check_app_id("{ABC-1}").unwrap(), "{abc-1}");
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_app_id(bad).is_err(), "{bad:?}");
        }
    }
}
