//! Reading config files with errors that point at the file, line and column, and writing
//! any file atomically (temporary file, fsync, rename, fsync of the directory).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Mode of files Routerly creates: they may hold hashes and encrypted secrets.
const NEW_FILE_MODE: u32 = 0o600;

/// A config file that cannot be used, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the problem; 0 when the problem has no position (unreadable file).
    pub line: usize,
    /// 1-based column of the problem; 0 when unknown.
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigFileError {}

impl ConfigFileError {
    /// An error about the whole file, such as one that cannot be read.
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        ConfigFileError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

/// Parses `bytes` (the contents of `path`) as JSON of type `T`; syntax and schema errors
/// (unknown fields, bad enum values, wrong types) carry serde_json's line and column.
pub fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, ConfigFileError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let line = error.line();
        let column = error.column();
        let full = error.to_string();
        // serde_json appends the position to its message; we print it in front instead.
        let message = full
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&full)
            .to_owned();
        ConfigFileError {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// Reads and parses the config file at `path`.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let bytes = fs::read(path)
        .map_err(|error| ConfigFileError::whole_file(path, format!("cannot read: {error}")))?;
    parse_json(path, &bytes)
}

/// `value` as pretty JSON with a trailing newline, the form every config file is written in.
pub fn to_pretty_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Serializes `value` as pretty JSON and writes it to `path` atomically; returns the bytes
/// written so the caller can remember their hash.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<Vec<u8>> {
    let bytes = to_pretty_json(value)?;
    write_atomic(path, &bytes)?;
    Ok(bytes)
}

/// Replaces the file at `path` with `contents` so that a crash leaves either the old or the
/// new file, never a mix: write a temporary file in the same directory, fsync it, rename it
/// over `path`, fsync the directory. A new file gets mode 0600; a replaced one keeps its mode.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(contents)).map(drop)
}

/// [`write_atomic`] with the contents produced by `write_contents`, which may fail part-way;
/// on any failure the temporary file is removed and `path` is untouched. Returns the metadata
/// of the new file taken before the rename, so it describes our write and not a later one.
pub(crate) fn write_atomic_with(
    path: &Path,
    write_contents: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<fs::Metadata> {
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let mode = existing_mode(path).unwrap_or(NEW_FILE_MODE);
    let mut random = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let temp_path = dir.join(format!(".{file_name}.{}.tmp", hex::encode(random)));

    let result = (|| {
        let mut file = create_new_with_mode(&temp_path, mode)?;
        write_contents(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        let metadata = file.metadata()?;
        drop(file);
        fs::rename(&temp_path, path)?;
        sync_dir(dir)?;
        Ok(metadata)
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist (creation failed) or be gone (renamed).
        let _ = fs::remove_file(&temp_path);
    }
    result
}

/// Fsyncs a directory so that a rename or creation inside it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn existing_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .ok()
        .map(|metadata| metadata.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn existing_mode(_path: &Path) -> Option<u32> {
    None
}

/// Mode of every folder Routerly creates under its home: only the service's user may list it.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode 0700 (folders that exist keep theirs).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(dir)
}

/// Opens `path` for appending, creating it (and its folder) private: mode 0600, folder 0700.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        create_private_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(NEW_FILE_MODE);
    }
    options.open(path)
}

/// Creates `path` (failing if it exists) with exactly `mode`, regardless of the umask.
pub(crate) fn create_new_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let file = options.open(path)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        options.open(path)
    }
}

/// What we last saw of a file on disk, to notice changes made by someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    /// Modification time, when the platform has one.
    pub modified: Option<SystemTime>,
    /// Length in bytes.
    pub len: u64,
    /// SHA-256 of the contents: the final word on whether the file changed.
    pub hash: [u8; 32],
}

impl FileStamp {
    /// The stamp of `contents` as read from a file with `metadata`.
    pub fn new(metadata: &fs::Metadata, contents: &[u8]) -> Self {
        FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            hash: Sha256::digest(contents).into(),
        }
    }

    /// Whether `metadata` suggests the file is as stamped (same mtime and length); a match
    /// still needs the hash to be sure, a mismatch does not prove the contents changed.
    pub fn metadata_matches(&self, metadata: &fs::Metadata) -> bool {
        self.modified == metadata.modified().ok() && self.len == metadata.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerly_core::config::ModelsFile;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("temp dir is readable")
            .map(|entry| {
                entry
                    .expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_replaces_contents_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("models.json");
        write_atomic(&path, b"old\n").expect("first write");
        write_json_atomic(&path, &ModelsFile::default()).expect("second write");
        assert_eq!(
            fs::read_to_string(&path).expect("read back"),
            "{\n  \"models\": []\n}\n"
        );
        assert_eq!(dir_entries(dir.path()), vec!["models.json".to_owned()]);
    }

    #[test]
    fn failed_atomic_write_keeps_the_old_contents_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("projects.json");
        write_atomic(&path, b"{\"projects\": []}\n").expect("first write");
        let error = write_atomic_with(&path, |file| {
            file.write_all(b"{\"projects\": [ half")?;
            Err(io::Error::other("disk full"))
        })
        .expect_err("the write callback failed, so the write must fail");
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(
            fs::read_to_string(&path).expect("read back"),
            "{\"projects\": []}\n",
            "old contents must survive a failed write"
        );
        assert_eq!(dir_entries(dir.path()), vec!["projects.json".to_owned()]);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_creates_private_files_and_keeps_existing_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret-ish.json");
        write_atomic(&path, b"1").expect("create");
        let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&path, b"2").expect("replace");
        assert_eq!(mode(&path), 0o640);
    }

    #[test]
    fn schema_errors_name_file_line_and_column() {
        let text = "{\n  \"models\": [\n    {\n      \"id\": \"g\",\n      \"provider\": \"gemni\",\n      \"endpoint\": \"x\",\n      \"upstream_model\": \"g\"\n    }\n  ]\n}\n";
        let error = parse_json::<ModelsFile>(Path::new("config/models.json"), text.as_bytes())
            .expect_err("gemni is not a provider");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "config/models.json:5:25: unknown variant `gemni`, expected one of `openai`, `custom`, `anthropic`, `gemini`"
            ),
            "{message}"
        );
        let error =
            parse_json::<ModelsFile>(Path::new("m.json"), b"{\"models\": [], \"extra\": 1}")
                .expect_err("unknown field");
        assert_eq!((error.line, error.column), (1, 22), "{error}");
        assert!(error.message.contains("unknown field `extra`"), "{error}");
        let error = parse_json::<ModelsFile>(Path::new("m.json"), b"{\"models\": [")
            .expect_err("truncated");
        assert!(error.line >= 1, "{error}");
    }
}
