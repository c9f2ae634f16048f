//! Installer: unpacks a `.tar.gz` (`.tgz`) or `.zip` payload into the
//! install directory.
//!
//! - File modes from the archive are kept (permission bits only, through the
//!   host's `set-permissions`; setuid, setgid and sticky bits are dropped).
//! - Entries that would land outside the install directory are refused:
//!   absolute paths, `..`, symbolic links whose target leaves the directory,
//!   hard links to such names, and device or FIFO entries.
//! - What was installed is listed in `.upkeep-install-archive` inside the
//!   install directory; an update removes what the new archive no longer
//!   has, and uninstall removes exactly what was installed.
//!
//! - Installer data (Omaha install data the update engine got from the
//!   server, for a first install) is written to `installerdata` in the
//!   install directory, mode 0644, and recorded like the unpacked entries.
//!   Without installer data no such file is written. The host also mounts
//!   it as `/installer-data/installerdata` (UTF-8 with a byte-order mark,
//!   as Omaha hands it to installers); the plugin checks that the file and
//!   the string agree, so both ways in are exercised.
//!
//! Arguments: `--archive NAME` picks the archive inside the payload when it
//! holds several; `--max-bytes N` caps the unpacked size (default 8 GiB).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use upkeep_plugin_sdk::{InstallError, InstallRequest, InstallSuccess, Installer, Operation, info, progress, warn};

const ROOT: &str = "/install";
const RECORD: &str = ".upkeep-install-archive";
const INSTALLER_DATA: &str = "installerdata";
const INSTALLER_DATA_FILE: &str = "/installer-data/installerdata";
const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Installer error codes, reported in the Omaha event's `errorcode`.
mod code {
    pub const NO_PAYLOAD: i32 = 10;
    pub const NO_ARCHIVE: i32 = 11;
    pub const BAD_ARGUMENTS: i32 = 12;
    pub const UNSAFE_ENTRY: i32 = 20;
    pub const CORRUPT_ARCHIVE: i32 = 21;
    pub const TOO_LARGE: i32 = 22;
    pub const WRITE_FAILED: i32 = 30;
    pub const RECORD_FAILED: i32 = 31;
    pub const INSTALLER_DATA_DIFFERS: i32 = 40;
}

struct InstallArchive;

fn fail(code: i32, message: impl Into<String>) -> InstallError {
    InstallError { code, extra_code: 0, message: message.into() }
}

fn io_fail(what: &str, path: &Path, e: io::Error) -> InstallError {
    fail(code::WRITE_FAILED, format!("{what} {}: {e}", path.display()))
}

impl Installer for InstallArchive {
    fn run(request: InstallRequest) -> Result<InstallSuccess, InstallError> {
        match request.operation {
            Operation::Install | Operation::Update => install(&request),
            Operation::Uninstall => uninstall(),
        }
    }
}

struct Options {
    archive: Option<String>,
    max_bytes: u64,
}

fn parse_arguments(args: &[String]) -> Result<Options, InstallError> {
    let mut options = Options { archive: None, max_bytes: DEFAULT_MAX_BYTES };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| fail(code::BAD_ARGUMENTS, format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--archive" => options.archive = Some(value("--archive")?),
            "--max-bytes" => {
                let v = value("--max-bytes")?;
                options.max_bytes =
                    v.parse().map_err(|_| fail(code::BAD_ARGUMENTS, format!("--max-bytes {v:?} is not a number")))?;
            }
            other => return Err(fail(code::BAD_ARGUMENTS, format!("unknown argument {other:?}"))),
        }
    }
    Ok(options)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tar,
    Zip,
}

fn kind_of(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(Kind::Tar)
    } else if lower.ends_with(".zip") {
        Some(Kind::Zip)
    } else {
        None
    }
}

fn find_archive(payload: &str, wanted: Option<&str>) -> Result<(PathBuf, Kind), InstallError> {
    if let Some(name) = wanted {
        let path = upkeep_plugin_sdk::join_inside(payload, name).map_err(|e| fail(code::BAD_ARGUMENTS, e))?;
        let kind = kind_of(name)
            .ok_or_else(|| fail(code::NO_ARCHIVE, format!("{name} is neither .tar.gz, .tgz nor .zip")))?;
        return Ok((PathBuf::from(path), kind));
    }
    let entries = fs::read_dir(payload).map_err(|e| fail(code::NO_PAYLOAD, format!("cannot list the payload: {e}")))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(code::NO_PAYLOAD, format!("cannot list the payload: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(kind) = kind_of(&name) {
            found.push((entry.path(), kind, name));
        }
    }
    match found.len() {
        1 => {
            let (path, kind, _) = found.remove(0);
            Ok((path, kind))
        }
        0 => Err(fail(code::NO_ARCHIVE, "the payload holds no .tar.gz, .tgz or .zip file")),
        _ => {
            let names: Vec<_> = found.into_iter().map(|f| f.2).collect();
            Err(fail(code::NO_ARCHIVE, format!("the payload holds several archives ({}); pick one with --archive", names.join(", "))))
        }
    }
}

/// Turns an archive entry name into a relative path made of normal parts,
/// refusing anything that could leave the install directory. The empty path
/// (an entry such as `./`) stands for the install directory itself.
fn safe_relative(name: &str) -> Result<PathBuf, InstallError> {
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\0') {
        return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} has an absolute path")));
    }
    let mut out = PathBuf::new();
    for part in Path::new(name).components() {
        match part {
            Component::Normal(p) => {
                if p.to_string_lossy().contains('\\') {
                    return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} contains a backslash")));
                }
                out.push(p)
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} climbs out through '..'")));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} has an absolute path")));
            }
        }
    }
    if out == Path::new(RECORD) {
        return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} would overwrite the installer's record")));
    }
    Ok(out)
}

/// Checks that a symlink at `link` (relative) pointing at `target` stays
/// inside the install directory once resolved.
fn check_link_target(link: &Path, target: &str) -> Result<(), InstallError> {
    if target.is_empty() || target.starts_with('/') || target.starts_with('\\') {
        return Err(fail(code::UNSAFE_ENTRY, format!("link {} points at {target:?}, outside the install directory", link.display())));
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for part in Path::new(target).components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(fail(
                        code::UNSAFE_ENTRY,
                        format!("link {} points at {target:?}, outside the install directory", link.display()),
                    ));
                }
            }
            _ => return Err(fail(code::UNSAFE_ENTRY, format!("link {} has an absolute target", link.display()))),
        }
    }
    Ok(())
}

struct Unpacker {
    installed: BTreeSet<String>,
    written: u64,
    max_bytes: u64,
    entries: u64,
}

impl Unpacker {
    fn abs(rel: &Path) -> PathBuf {
        Path::new(ROOT).join(rel)
    }

    fn check_names_file(rel: &Path) -> Result<(), InstallError> {
        if rel.as_os_str().is_empty() {
            return Err(fail(code::UNSAFE_ENTRY, "an entry that is not a directory names the install directory itself"));
        }
        Ok(())
    }

    fn record(&mut self, rel: &Path, dir: bool) {
        // Directories created on the way are installed too.
        for ancestor in rel.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            self.installed.insert(format!("{}/", ancestor.to_string_lossy()));
        }
        let mut s = rel.to_string_lossy().into_owned();
        if dir {
            s.push('/');
        }
        self.installed.insert(s);
        self.entries += 1;
        if self.entries % 64 == 0 {
            progress(self.entries, 0, "unpacking");
        }
    }

    fn make_parents(&mut self, rel: &Path) -> Result<(), InstallError> {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let abs = Self::abs(parent);
            fs::create_dir_all(&abs).map_err(|e| io_fail("cannot create directory", &abs, e))?;
        }
        Ok(())
    }

    /// Removes whatever is at `abs` unless it is a directory, so that a new
    /// file never writes through an old link.
    fn clear(abs: &Path) -> Result<(), InstallError> {
        match fs::symlink_metadata(abs) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fs::remove_file(abs).map_err(|e| io_fail("cannot replace", abs, e)),
            Err(_) => Ok(()),
        }
    }

    fn dir(&mut self, rel: &Path, mode: Option<u32>) -> Result<(), InstallError> {
        if rel.as_os_str().is_empty() {
            // The install directory itself: it exists and keeps its mode.
            return Ok(());
        }
        let abs = Self::abs(rel);
        fs::create_dir_all(&abs).map_err(|e| io_fail("cannot create directory", &abs, e))?;
        self.mode(rel, mode)?;
        self.record(rel, true);
        Ok(())
    }

    fn file(&mut self, rel: &Path, mode: Option<u32>, content: &mut dyn Read) -> Result<(), InstallError> {
        Self::check_names_file(rel)?;
        self.make_parents(rel)?;
        let abs = Self::abs(rel);
        Self::clear(&abs)?;
        let mut out = fs::File::create(&abs).map_err(|e| io_fail("cannot create", &abs, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = content
                .read(&mut buf)
                .map_err(|e| fail(code::CORRUPT_ARCHIVE, format!("cannot read entry {}: {e}", rel.display())))?;
            if n == 0 {
                break;
            }
            self.written += n as u64;
            if self.written > self.max_bytes {
                return Err(fail(code::TOO_LARGE, format!("the archive unpacks to more than {} bytes", self.max_bytes)));
            }
            out.write_all(&buf[..n]).map_err(|e| io_fail("cannot write", &abs, e))?;
        }
        out.flush().map_err(|e| io_fail("cannot write", &abs, e))?;
        drop(out);
        self.mode(rel, mode)?;
        self.record(rel, false);
        Ok(())
    }

    fn symlink(&mut self, rel: &Path, target: &str) -> Result<(), InstallError> {
        Self::check_names_file(rel)?;
        check_link_target(rel, target)?;
        self.make_parents(rel)?;
        let abs = Self::abs(rel);
        Self::clear(&abs)?;
        symlink_in_root(target, rel)?;
        self.record(rel, false);
        Ok(())
    }

    fn mode(&self, rel: &Path, mode: Option<u32>) -> Result<(), InstallError> {
        if let Some(mode) = mode {
            let bits = mode & 0o777;
            upkeep_plugin_sdk::set_permissions(ROOT, &rel.to_string_lossy(), bits)
                .map_err(|e| fail(code::WRITE_FAILED, e))?;
        }
        Ok(())
    }
}

/// Creates a symbolic link through the WASI descriptor of the install
/// mount (std has no stable call for this on WASI).
fn symlink_in_root(target: &str, rel: &Path) -> Result<(), InstallError> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let Some((root, _)) = dirs.iter().find(|(_, path)| path == ROOT) else {
        return Err(fail(code::WRITE_FAILED, "the install directory is not mounted"));
    };
    root.symlink_at(target, &rel.to_string_lossy())
        .map_err(|e| fail(code::WRITE_FAILED, format!("cannot create link {}: {e:?}", rel.display())))
}

fn unpack_tar(path: &Path, u: &mut Unpacker) -> Result<(), InstallError> {
    let file = fs::File::open(path).map_err(|e| fail(code::NO_ARCHIVE, format!("cannot open {}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let corrupt = |e: io::Error| fail(code::CORRUPT_ARCHIVE, format!("{}: {e}", path.display()));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_relative(&name)?;
        let mode = entry.header().mode().ok();
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => u.dir(&rel, mode)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => u.file(&rel, mode, &mut entry)?,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| fail(code::CORRUPT_ARCHIVE, format!("link {name:?} has no target")))?;
                u.symlink(&rel, &target)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| fail(code::CORRUPT_ARCHIVE, format!("hard link {name:?} has no target")))?;
                let source = safe_relative(&target)?;
                let abs = Unpacker::abs(&source);
                let meta = fs::symlink_metadata(&abs).map_err(|e| io_fail("hard link source", &abs, e))?;
                if !meta.is_file() {
                    return Err(fail(code::UNSAFE_ENTRY, format!("hard link {name:?} must point at a regular file unpacked before it")));
                }
                let mut src = fs::File::open(&abs).map_err(|e| io_fail("cannot open", &abs, e))?;
                u.file(&rel, mode, &mut src)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            other => {
                return Err(fail(code::UNSAFE_ENTRY, format!("entry {name:?} is a {other:?}; only files, directories and links are installed")));
            }
        }
    }
    Ok(())
}

fn unpack_zip(path: &Path, u: &mut Unpacker) -> Result<(), InstallError> {
    let file = fs::File::open(path).map_err(|e| fail(code::NO_ARCHIVE, format!("cannot open {}: {e}", path.display())))?;
    let corrupt = |e: zip::result::ZipError| fail(code::CORRUPT_ARCHIVE, format!("{}: {e}", path.display()));
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(corrupt)?;
    let total = archive.len() as u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(corrupt)?;
        let name = entry.name().to_string();
        let rel = safe_relative(&name)?;
        let mode = entry.unix_mode();
        let is_link = mode.is_some_and(|m| m & 0o170000 == 0o120000);
        if entry.is_dir() {
            u.dir(&rel, mode)?;
        } else if is_link {
            let mut target = String::new();
            entry
                .read_to_string(&mut target)
                .map_err(|e| fail(code::CORRUPT_ARCHIVE, format!("link {name:?}: {e}")))?;
            u.symlink(&rel, &target)?;
        } else {
            u.file(&rel, mode, &mut entry)?;
        }
        progress(i as u64 + 1, total, "unpacking");
    }
    Ok(())
}

fn read_record() -> Result<Vec<String>, InstallError> {
    let path = Path::new(ROOT).join(RECORD);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(fail(code::RECORD_FAILED, format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_record(entries: &BTreeSet<String>) -> Result<(), InstallError> {
    let path = Path::new(ROOT).join(RECORD);
    let tmp = Path::new(ROOT).join(format!("{RECORD}.tmp"));
    let mut text = String::new();
    for e in entries {
        text.push_str(e);
        text.push('\n');
    }
    fs::write(&tmp, text).map_err(|e| fail(code::RECORD_FAILED, format!("cannot write {}: {e}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(|e| fail(code::RECORD_FAILED, format!("cannot write {}: {e}", path.display())))
}

/// Removes recorded entries: files and links first, then directories,
/// deepest first, each only if empty. Entries that are already gone are fine.
fn remove_entries<'a>(entries: impl Iterator<Item = &'a String>) -> Result<u64, InstallError> {
    let mut dirs = Vec::new();
    let mut removed = 0;
    for e in entries {
        let Ok(rel) = safe_relative(e.trim_end_matches('/')) else {
            warn!("skipping unsafe record entry {e:?}");
            continue;
        };
        let abs = Unpacker::abs(&rel);
        if e.ends_with('/') {
            dirs.push(abs);
            continue;
        }
        match fs::symlink_metadata(&abs) {
            Ok(m) if !m.is_dir() => {
                fs::remove_file(&abs).map_err(|err| io_fail("cannot remove", &abs, err))?;
                removed += 1;
            }
            _ => {}
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if fs::remove_dir(&d).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn install(request: &InstallRequest) -> Result<InstallSuccess, InstallError> {
    let options = parse_arguments(&request.arguments)?;
    let payload = request.payload_dir.as_deref().ok_or_else(|| fail(code::NO_PAYLOAD, "no payload directory was mounted"))?;
    let (archive, kind) = find_archive(payload, options.archive.as_deref())?;
    let previous = read_record()?;
    let mut u = Unpacker { installed: BTreeSet::new(), written: 0, max_bytes: options.max_bytes, entries: 0 };
    info!("unpacking {} for {} {}", archive.display(), request.app_id, request.to_version);
    let unpacked = match kind {
        Kind::Tar => unpack_tar(&archive, &mut u),
        Kind::Zip => unpack_zip(&archive, &mut u),
    };
    let mut data_file_read = false;
    let unpacked = unpacked.and_then(|()| match request.installer_data.as_deref() {
        Some(data) => {
            data_file_read = check_installer_data_file(data)?;
            info!("writing {} bytes of installer data to {INSTALLER_DATA}", data.len());
            u.file(Path::new(INSTALLER_DATA), Some(0o644), &mut data.as_bytes())
        }
        None => Ok(()),
    });
    if let Err(e) = unpacked {
        // Take back what this run added that the previous install did not
        // have, so a refused archive leaves no strays.
        let before: BTreeSet<&String> = previous.iter().collect();
        let _ = remove_entries(u.installed.iter().filter(|e| !before.contains(e)));
        return Err(e);
    }
    let stale: Vec<&String> = previous.iter().filter(|p| !u.installed.contains(*p)).collect();
    let removed = remove_entries(stale.into_iter())?;
    write_record(&u.installed)?;
    Ok(InstallSuccess {
        message: Some(format!(
            "unpacked {} entries ({} bytes) into the install directory{}{}",
            u.installed.len(),
            u.written,
            if removed > 0 { format!("; removed {removed} left from the previous version") } else { String::new() },
            if data_file_read { format!("; installer data also read from {INSTALLER_DATA_FILE}") } else { String::new() }
        )),
    })
}

/// The installer data file the host mounts must hold `data` after a
/// UTF-8 byte-order mark. A host that mounts no such file is fine.
/// Whether the file was there.
fn check_installer_data_file(data: &str) -> Result<bool, InstallError> {
    let bytes = match fs::read(INSTALLER_DATA_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail(code::INSTALLER_DATA_DIFFERS, format!("cannot read {INSTALLER_DATA_FILE}: {e}"))),
    };
    match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(text) if text == data.as_bytes() => {
            info!("{INSTALLER_DATA_FILE} holds the same installer data, after a byte-order mark");
            Ok(true)
        }
        Some(_) => Err(fail(code::INSTALLER_DATA_DIFFERS, format!("{INSTALLER_DATA_FILE} differs from the installer data"))),
        None => Err(fail(code::INSTALLER_DATA_DIFFERS, format!("{INSTALLER_DATA_FILE} does not start with a byte-order mark"))),
    }
}

fn uninstall() -> Result<InstallSuccess, InstallError> {
    let recorded = read_record()?;
    if recorded.is_empty() {
        return Ok(InstallSuccess { message: Some("nothing recorded as installed; nothing removed".into()) });
    }
    let removed = remove_entries(recorded.iter())?;
    let record = Path::new(ROOT).join(RECORD);
    fs::remove_file(&record).map_err(|e| io_fail("cannot remove", &record, e))?;
    Ok(InstallSuccess { message: Some(format!("removed {removed} installed entries")) })
}

upkeep_plugin_sdk::export_installer!(InstallArchive);
