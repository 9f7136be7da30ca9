//! Safe replacement of the config file: lock, read, validate a candidate, back up, rename.
//!
//! The original is never opened for writing: the new contents go to a temp file in the same
//! directory, which is validated, synced and renamed over the original. Until the rename the
//! original is untouched, and a failure drops the temp file.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::FallocateFlags;
use sha2::{Digest, Sha256};

use crate::beside;

/// Why the file could not be read or replaced. The original is unchanged when one is returned.
#[derive(Debug)]
pub enum FileError {
    /// An I/O step failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another run held the lock for longer than `lock_timeout`.
    LockTimeout {
        /// The locked directory.
        dir: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The file is not UTF-8 text.
    NotText {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The validation command could not be started.
    ValidateSpawn {
        /// The command as run.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The validation command rejected the candidate file.
    ValidateFailed {
        /// The command as run.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },
    /// The file no longer holds what this run wrote: someone else changed it since.
    ChangedMeanwhile(PathBuf),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::LockTimeout { dir, waited } => write!(
                f,
                "timed out after {:.1} s waiting for the lock on {} (another run is editing it)",
                waited.as_secs_f64(),
                dir.display()
            ),
            Self::NotText { path, offset } => write!(
                f,
                "{} is not UTF-8 text (invalid byte at offset {offset})",
                path.display()
            ),
            Self::ValidateSpawn { command, source } => {
                write!(f, "cannot run the validate command `{command}`: {source}")
            }
            Self::ValidateFailed {
                command,
                status,
                output,
            } => write!(
                f,
                "validation failed, file left unchanged: `{command}` {status}: {}",
                output.trim()
            ),
            Self::ChangedMeanwhile(path) => write!(
                f,
                "{} was changed by someone else since this run wrote it, and is left as it is",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FileError {}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError::Io {
        action,
        path,
        source,
    }
}

/// The lowercase hex sha256 of a text given in pieces.
pub fn sha256_hex<'t>(pieces: impl IntoIterator<Item = &'t str>) -> String {
    let mut hasher = Sha256::new();
    pieces
        .into_iter()
        .for_each(|piece| hasher.update(piece.as_bytes()));
    hex(hasher)
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes between two saved states of [`SourceHash`] (a multiple of sha256's 64-byte block).
const CHECKPOINT: usize = 64 * 1024;

/// The sha256 of the text read, with the hasher's state saved every [`CHECKPOINT`] bytes, so that
/// the hash of the edited text resumes just before its first edit instead of starting over (hashing
/// is most of a run's work on a large file). Cheap to keep: a saved state is about 100 bytes.
#[derive(Debug)]
pub struct SourceHash {
    /// The lowercase hex sha256 of the whole text.
    pub hex: String,
    /// `checkpoints[i]`: the state after the first `i * CHECKPOINT` bytes.
    checkpoints: Vec<Sha256>,
}

impl SourceHash {
    /// Hashes `source`, saving states on the way.
    pub fn of(source: &str) -> Self {
        let mut hasher = Sha256::new();
        let mut checkpoints = Vec::with_capacity(source.len() / CHECKPOINT + 1);
        for chunk in source.as_bytes().chunks(CHECKPOINT) {
            checkpoints.push(hasher.clone());
            hasher.update(chunk);
        }
        Self {
            hex: hex(hasher),
            checkpoints,
        }
    }

    /// The sha256 of `source` (the text this hash was computed on) with `patch` applied.
    pub fn after(&self, source: &str, patch: &haproxy_cfg::Patch) -> String {
        let Some((first, _)) = patch.edits.first() else {
            return self.hex.clone();
        };
        let shared = first.start;
        let saved = (shared / CHECKPOINT).min(self.checkpoints.len().saturating_sub(1));
        let mut after = self.checkpoints.get(saved).cloned().unwrap_or_default();
        after.update(&source.as_bytes()[saved * CHECKPOINT..shared]);
        // The pieces start with the unchanged text before the first edit when there is some.
        patch
            .pieces(source)
            .skip(usize::from(shared > 0))
            .for_each(|piece| after.update(piece.as_bytes()));
        hex(after)
    }
}

/// The config file, locked against other runs for as long as this value lives.
///
/// The lock is an exclusive `flock` on the file's directory: unlike a lock on the file itself,
/// it survives the rename that replaces the file, and it leaves no lock file behind.
#[derive(Debug)]
pub struct LockedFile {
    path: PathBuf,
    dir: File,
    dir_path: PathBuf,
}

impl LockedFile {
    /// Locks the directory of `path` (symlinks resolved), waiting up to `timeout`.
    pub fn lock(path: &Path, timeout: Duration) -> Result<Self, FileError> {
        let path = fs::canonicalize(path).map_err(io_error("find", path))?;
        let dir_path = path.parent().unwrap_or(Path::new("/")).to_owned();
        let dir = File::open(&dir_path).map_err(io_error("open the directory", &dir_path))?;
        let start = Instant::now();
        loop {
            match dir.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(FileError::LockTimeout {
                        dir: dir_path,
                        waited: start.elapsed(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(io_error("lock", &dir_path)(e)),
            }
        }
        Ok(Self {
            path,
            dir,
            dir_path,
        })
    }

    /// The file's resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file; [`FileBytes::text`] checks that it is text.
    pub fn read(&self) -> Result<FileBytes, FileError> {
        FileBytes::read(&self.path)
    }

    /// Replaces the file with `contents` (the new text in pieces), keeping its owner and mode.
    ///
    /// `validate` (argv with `%s`) checks the candidate first. With `backup`, the old
    /// contents `original` are kept under a timestamped name, which is returned.
    pub fn replace<'c>(
        &self,
        original: &str,
        contents: impl IntoIterator<Item = &'c str>,
        validate: Option<&[String]>,
        backup: bool,
    ) -> Result<Option<PathBuf>, FileError> {
        let meta = fs::metadata(&self.path).map_err(io_error("stat", &self.path))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".autoheal-tmp")
            .tempfile_in(&self.dir_path)
            .map_err(io_error("create a temp file in", &self.dir_path))?;
        let temp_path = temp.path().to_owned();
        let pieces: Vec<&str> = contents.into_iter().collect();
        let len: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        if len > 0 {
            // Best effort: blocks reserved in one call rather than page by page as the text is
            // written (a fifth of the write's cost on a large file). A filesystem that cannot just
            // reserves them as before.
            let _ = rustix::fs::fallocate(temp.as_file(), FallocateFlags::empty(), 0, len);
        }
        for piece in pieces {
            temp.write_all(piece.as_bytes())
                .map_err(io_error("write", &temp_path))?;
        }
        keep_owner_and_mode(temp.as_file(), &meta).map_err(io_error("chown/chmod", &temp_path))?;
        // A large file's cached pages would be dropped by the rename, on this thread; dropped on
        // the other core during the sync, they go while the disk, not the CPU, is busy. Should the
        // rename not happen after all, the old file is merely read from disk next time.
        let replaced = (meta.len() >= LARGE_FILE as u64)
            .then(|| File::open(&self.path).ok())
            .flatten();
        std::thread::scope(|scope| {
            if let Some(replaced) = replaced {
                beside::spawn(scope, move || {
                    let _ = rustix::fs::fadvise(&replaced, 0, None, rustix::fs::Advice::DontNeed);
                });
            }
            temp.as_file().sync_all()
        })
        .map_err(io_error("fsync", &temp_path))?;
        if let Some(argv) = validate {
            run_validate(argv, &temp_path)?;
        }
        let backup_file = if backup {
            Some(write_backup(&self.path, original, &meta)?)
        } else {
            None
        };
        if let Err(e) = temp.persist(&self.path) {
            if let Some(backup_file) = &backup_file {
                // Best effort: the run failed, so the backup of an unchanged file is noise.
                let _ = fs::remove_file(backup_file);
            }
            return Err(io_error("rename the temp file over", &self.path)(e.error));
        }
        self.dir
            .sync_all()
            .map_err(io_error("fsync the directory", &self.dir_path))?;
        Ok(backup_file)
    }
}

/// Replaces `path` with `text` through a synced temp file in the same directory (mode 0644).
pub fn write_text(path: &Path, text: &str) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut temp = tempfile::Builder::new()
        .prefix(".autoheal.")
        .tempfile_in(dir)
        .map_err(io_error("create a temp file in", dir))?;
    let temp_path = temp.path().to_owned();
    temp.write_all(text.as_bytes())
        .and_then(|()| {
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_error("write", &temp_path))?;
    temp.persist(path)
        .map_err(|e| io_error("rename the temp file over", path)(e.error))?;
    Ok(())
}

/// A whole file's bytes. A large file is read into anonymous memory advised to use transparent
/// huge pages, its length rounded up to a whole number of them: on a 5 MiB file, faulting in 4 KiB
/// pages one by one costs more than the copy itself (even all at once with `MAP_POPULATE`, it takes
/// twice as long as the read), where three 2 MiB pages cost little.
#[derive(Debug)]
pub struct FileBytes(Bytes);

#[derive(Debug)]
enum Bytes {
    Mapped { map: memmap2::MmapMut, len: usize },
    Owned(Vec<u8>),
}

/// The size of an x86-64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// From this size on, a file is read onto huge pages and its cache is dropped beside the sync
/// when it is replaced: below it, neither pays for the page zeroing or the thread it costs.
const LARGE_FILE: usize = HUGE_PAGE;

impl FileBytes {
    fn read(path: &Path) -> Result<Self, FileError> {
        let mut file = File::open(path).map_err(io_error("read", path))?;
        let len = file.metadata().map_err(io_error("stat", path))?.len();
        let mapped = match usize::try_from(len) {
            Ok(len) if len >= LARGE_FILE => len
                .checked_next_multiple_of(HUGE_PAGE)
                .and_then(|mapped_len| memmap2::MmapOptions::new().len(mapped_len).map_anon().ok())
                .map(|map| (map, len)),
            _ => None,
        };
        let Some((mut map, len)) = mapped else {
            return Self::read_to_end(file, path);
        };
        // Only advice: with huge pages disabled the read faults in small ones. With the kernel's
        // default `defrag` setting a fault may first compact memory to find a free huge page,
        // which on a long-running, fragmented host can cost more than it saves, now and then.
        let _ = map.advise(memmap2::Advice::HugePage);
        file.read_exact(&mut map[..len])
            .map_err(io_error("read", path))?;
        // Grown since the stat (edited in place by someone else): read what it holds now.
        let mut probe = [0u8; 1];
        if file.read(&mut probe).map_err(io_error("read", path))? != 0 {
            return Self::read_to_end(File::open(path).map_err(io_error("read", path))?, path);
        }
        Ok(Self(Bytes::Mapped { map, len }))
    }

    fn read_to_end(mut file: File, path: &Path) -> Result<Self, FileError> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error("read", path))?;
        Ok(Self(Bytes::Owned(bytes)))
    }

    /// The bytes as text, or where they stop being UTF-8.
    pub fn text(&self, path: &Path) -> Result<&str, FileError> {
        let bytes = match &self.0 {
            Bytes::Mapped { map, len } => &map[..*len],
            Bytes::Owned(bytes) => bytes.as_slice(),
        };
        std::str::from_utf8(bytes).map_err(|e| FileError::NotText {
            path: path.to_owned(),
            offset: e.valid_up_to(),
        })
    }
}

/// Reads a whole file as text. The file is only ever replaced by rename, so a read without the
/// lock sees either the old or the new contents.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    String::from_utf8(bytes).map_err(|e| FileError::NotText {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

fn keep_owner_and_mode(file: &File, meta: &fs::Metadata) -> std::io::Result<()> {
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
    file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Runs `argv` with `%s` replaced by `candidate`, without a shell.
pub fn run_validate(argv: &[String], candidate: &Path) -> Result<(), FileError> {
    let candidate = candidate.to_string_lossy();
    let argv: Vec<String> = argv.iter().map(|a| a.replace("%s", &candidate)).collect();
    let command = argv.join(" ");
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|source| FileError::ValidateSpawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(FileError::ValidateFailed {
        command,
        status: output.status.to_string(),
        output: text,
    })
}

/// Writes `contents` next to `path` under Ansible's backup name, with the file's owner and mode.
fn write_backup(path: &Path, contents: &str, meta: &fs::Metadata) -> Result<PathBuf, FileError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backup = backup_name(path, std::process::id(), now);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&backup)
        .map_err(io_error("create the backup", &backup))?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| keep_owner_and_mode(&file, meta))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&backup);
        return Err(io_error("write the backup", &backup)(e));
    }
    Ok(backup)
}

/// Ansible's backup name: `<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, here in UTC (the binary has
/// no time zone database).
pub fn backup_name(path: &Path, pid: u32, unix_secs: u64) -> PathBuf {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{pid}.{year:04}-{month:02}-{day:02}@{:02}:{:02}:{:02}~",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ));
    PathBuf::from(name)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_follow_ansible() {
        let p = Path::new("/etc/haproxy/haproxy.cfg");
        assert_eq!(
            backup_name(p, 42, 0),
            Path::new("/etc/haproxy/haproxy.cfg.42.1970-01-01@00:00:00~")
        );
        // 2000-02-29 23:59:59 UTC, a leap day.
        assert_eq!(
            backup_name(p, 7, 951_868_799),
            Path::new("/etc/haproxy/haproxy.cfg.7.2000-02-29@23:59:59~")
        );
        // 2026-11-25 14:30:05 UTC.
        assert_eq!(
            backup_name(p, 1234, 1_795_617_005),
            Path::new("/etc/haproxy/haproxy.cfg.1234.2026-11-25@14:30:05~")
        );
    }

    #[test]
    fn before_and_after_hashes_match_hashing_each_text_whole() {
        let source = "global\nbackend app\n    server a 127.0.0.1:1\n    server b 127.0.0.1:2\n";
        // Past several checkpoints, with the servers on either side of one.
        let padding = format!("# {}\n", "x".repeat(CHECKPOINT - 3));
        let long = format!("{padding}{padding}backend app\n    server a 127.0.0.1:1\n{padding}    server b 127.0.0.1:2\n{padding}");
        let request = |name: &str| haproxy_cfg::Request {
            backend: None,
            target: haproxy_cfg::Target::Name(name.into()),
            all_matches: false,
            desired: haproxy_cfg::Desired::Drain,
        };
        for source in [source, long.as_str()] {
            for requests in [
                vec![],
                vec![request("a")],
                vec![request("b"), request("a")],
                vec![request("b")],
            ] {
                let patch = haproxy_cfg::plan_all(source, &requests).unwrap();
                let after = patch.render(source);
                let hashed = SourceHash::of(source);
                assert_eq!(hashed.hex, sha256_hex([source]));
                assert_eq!(hashed.after(source, &patch), sha256_hex([after.as_str()]));
            }
        }
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(["a", "bc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replace_keeps_mode_writes_backup_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.cfg");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let locked = LockedFile::lock(&path, Duration::from_secs(1)).unwrap();
        let backup = locked
            .replace("old\n", ["new\n"], None, true)
            .unwrap()
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(fs::read_to_string(&backup).unwrap(), "old\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::metadata(&backup).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(entries(dir.path()).len(), 2, "{:?}", entries(dir.path()));
    }

    #[test]
    fn failed_validation_leaves_the_original_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.cfg");
        fs::write(&path, "old\n").unwrap();
        let locked = LockedFile::lock(&path, Duration::from_secs(1)).unwrap();
        let argv: Vec<String> = ["sh", "-c", "echo rejected $0; exit 3", "%s"]
            .map(String::from)
            .to_vec();
        let err = locked
            .replace("old\n", ["new\n"], Some(&argv), true)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("rejected") && msg.contains(".autoheal-tmp"),
            "{msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(entries(dir.path()), ["h.cfg"]);
        let missing = ["/nonexistent/validator", "%s"].map(String::from).to_vec();
        assert!(matches!(
            locked.replace("old\n", ["new\n"], Some(&missing), false),
            Err(FileError::ValidateSpawn { .. })
        ));
        assert_eq!(entries(dir.path()), ["h.cfg"]);
    }

    #[test]
    fn the_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.cfg");
        fs::write(&path, "x").unwrap();
        let first = LockedFile::lock(&path, Duration::ZERO).unwrap();
        let err = LockedFile::lock(&path, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, FileError::LockTimeout { .. }), "{err}");
        drop(first);
        LockedFile::lock(&path, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_read_gives_the_file_byte_for_byte_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.cfg");
        let line = "    server s 127.0.0.1:80 check\n";
        for len in [
            0,
            1,
            LARGE_FILE - 1,
            LARGE_FILE,
            LARGE_FILE + 1,
            2 * LARGE_FILE + 7,
        ] {
            let text: String = line.repeat(len / line.len() + 1)[..len].to_owned();
            fs::write(&path, &text).unwrap();
            let locked = LockedFile::lock(&path, Duration::ZERO).unwrap();
            let read = locked.read().unwrap();
            assert_eq!(read.text(&path).unwrap(), text, "a {len}-byte file");
        }
    }

    #[test]
    fn non_utf8_files_are_refused_with_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.cfg");
        fs::write(&path, b"global\n# caf\xe9\n").unwrap();
        let locked = LockedFile::lock(&path, Duration::ZERO).unwrap();
        assert!(matches!(
            locked.read().unwrap().text(&path),
            Err(FileError::NotText { offset: 12, .. })
        ));
    }
}
