//! The installer data of an installer call as a file, for installers that
//! read it from disk as Omaha's do: UTF-8 with a byte-order mark, in a
//! private temporary directory mounted read-only at
//! [`INSTALLER_DATA_DIR`](crate::world::INSTALLER_DATA_DIR) for the one
//! call and removed after it (dropping the returned directory removes it).

use std::io::Write;

use crate::world::INSTALLER_DATA_FILE;

/// The UTF-8 byte-order mark the file starts with.
pub const BOM: &str = "\u{feff}";

/// A private directory (mode 0700) holding `text` as
/// [`INSTALLER_DATA_FILE`] (mode 0600), flushed.
pub(crate) fn installer_data_dir(text: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("upkeep-installerdata-")
        .tempdir()?;
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(dir.path().join(INSTALLER_DATA_FILE))?;
    file.write_all(BOM.as_bytes())?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_starts_with_a_bom_is_private_and_goes_with_the_dir() {
        let dir = installer_data_dir("{\"lang\": \"de\"} ✓").unwrap();
        let path = dir.path().join(INSTALLER_DATA_FILE);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
        assert_eq!(&bytes[3..], "{\"lang\": \"de\"} ✓".as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(dir.path()), 0o700);
        }
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists());
    }
}
