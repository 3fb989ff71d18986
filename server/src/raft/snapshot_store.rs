//! Snapshot files: the one current state-machine snapshot of a data directory.
//!
//! A snapshot is replaced atomically: written to a temporary file, fsync'd, renamed
//! over `snapshot.bin`, and the directory fsync'd so the rename itself survives a
//! crash. A reader therefore sees the old snapshot or the new one, never a mix. The
//! file carries a magic and a SHA-256 of its body, so a damaged file (or a damaged
//! snapshot received from a peer, which is the same bytes) is refused rather than
//! restored.
//!
//! The methods here block (file I/O and fsync); callers on an executor run them on a
//! blocking thread.

use std::fs::File;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use sha2::Digest;
use sha2::Sha256;

const FILE_NAME: &str = "snapshot.bin";
const TMP_PREFIX: &str = "snapshot.tmp.";
const MAGIC: &[u8; 8] = b"CKVSNAP1";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// Errors of the snapshot directory.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The bytes are not a snapshot written by [`seal`].
    #[error("snapshot {0} is damaged: {1}")]
    Damaged(String, &'static str),
}

impl From<SnapshotStoreError> for io::Error {
    fn from(e: SnapshotStoreError) -> Self {
        match e {
            SnapshotStoreError::Io { ref source, .. } => {
                io::Error::new(source.kind(), e.to_string())
            }
            SnapshotStoreError::Damaged(..) => {
                io::Error::new(io::ErrorKind::InvalidData, e.to_string())
            }
        }
    }
}

/// Wraps a snapshot body into the on-disk (and on-wire) form: magic, digest, body.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// Checks the form made by [`seal`] and returns the body. `what` names the source
/// for the error message.
pub fn unseal<'a>(what: &str, sealed: &'a [u8]) -> Result<&'a [u8], SnapshotStoreError> {
    if sealed.len() < HEADER_LEN || &sealed[..MAGIC.len()] != MAGIC {
        return Err(SnapshotStoreError::Damaged(what.to_string(), "bad header"));
    }
    let (digest, body) = sealed[MAGIC.len()..].split_at(32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(SnapshotStoreError::Damaged(
            what.to_string(),
            "checksum mismatch",
        ));
    }
    Ok(body)
}

/// The directory holding the current snapshot.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Opens (creating) `dir` and removes temporary files left by a crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SnapshotStoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotStoreError::Io {
            action: "create snapshot directory",
            path: dir.clone(),
            source,
        })?;
        let entries = std::fs::read_dir(&dir).map_err(|source| SnapshotStoreError::Io {
            action: "list snapshot directory",
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| SnapshotStoreError::Io {
                    action: "remove stale snapshot temporary",
                    path,
                    source,
                })?;
            }
        }
        Ok(Self { dir })
    }

    /// Path of the current snapshot file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The sealed bytes of the current snapshot, if there is one.
    pub fn load(&self) -> Result<Option<Vec<u8>>, SnapshotStoreError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                unseal(&path.display().to_string(), &bytes)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SnapshotStoreError::Io {
                action: "read snapshot",
                path,
                source,
            }),
        }
    }

    /// Makes `sealed` the current snapshot, durably and atomically: written to a
    /// temporary file in the same directory (removed if anything fails before the
    /// rename), fsynced, renamed over the current one, and the directory fsynced.
    pub fn replace(&self, sealed: &[u8]) -> Result<(), SnapshotStoreError> {
        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotStoreError::Io {
                action,
                path,
                source,
            }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(io_err("create", &self.dir))?;
        tmp.write_all(sealed).map_err(io_err("write", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("fsync", tmp.path()))?;
        let path = self.path();
        tmp.persist(&path)
            .map_err(|e| io_err("rename snapshot into", &path)(e.error))?;
        // The rename is only durable once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_then_load_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert!(store.load().expect("load").is_none());

        store.replace(&seal(b"first")).expect("replace");
        store.replace(&seal(b"second")).expect("replace");
        let loaded = store.load().expect("load").expect("present");
        assert_eq!(unseal("t", &loaded).expect("valid"), b"second");

        // No temporaries left behind, and a reopen keeps the snapshot.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![FILE_NAME.to_string()]);
        let reopened = SnapshotStore::open(dir.path()).expect("reopen");
        assert!(reopened.load().expect("load").is_some());
    }

    #[test]
    fn stale_temporaries_are_removed_and_damage_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(format!("{TMP_PREFIX}1.0")), b"junk").expect("write");
        let store = SnapshotStore::open(dir.path()).expect("open");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);

        let mut sealed = seal(b"body");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        std::fs::write(store.path(), &sealed).expect("write");
        assert!(matches!(store.load(), Err(SnapshotStoreError::Damaged(..))));
        assert!(unseal("short", b"CKV").is_err());
    }
}
