//! The backup file: what `concord-topo ctl snapshot save` writes and
//! `concord-topo restore` reads. One file holds the replicated state a topology
//! server's state machine applied at one linearizable read point: the topology
//! AND its bounded event history, so a restored cluster serves the same history tail.
//!
//! Layout (integers little-endian):
//!
//! | bytes     | field                                                    |
//! |-----------|----------------------------------------------------------|
//! | 8         | magic `CKVBACKP`                                         |
//! | 4         | format version (u32, this code writes [`FORMAT_VERSION`]) |
//! | 8         | topology version (u64)                                   |
//! | 2 + n     | configHash: length (u16) then UTF-8                      |
//! | 8         | payload length (u64)                                     |
//! | 32        | SHA-256 of the payload                                   |
//! | payload   | the state (`TopologyState`) in postcard, the encoding of the Raft snapshot files |
//!
//! The header is checked before anything is decoded: a wrong magic, a newer format
//! version, a length that does not match the file, or a checksum that does not match
//! the payload are refused, each with a one-line reason. The version and configHash
//! of the header are also checked against the decoded state.

use concord_model::TopologyState;
use sha2::{Digest, Sha256};

/// First bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"CKVBACKP";
/// The format version this code writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Content type of `GET /api/admin/snapshot`.
pub const CONTENT_TYPE: &str = "application/vnd.concordkv.backup";

/// The fields in front of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    pub format_version: u32,
    /// Topology version of the state.
    pub version: u64,
    /// configHash of the state.
    pub config_hash: String,
    pub payload_len: u64,
    pub sha256: [u8; 32],
}

impl BackupHeader {
    /// The checksum in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why bytes are not a usable backup.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    #[error("not a ConcordKV topology backup (wrong magic)")]
    WrongMagic,
    #[error("format version {found} is newer than this binary reads (up to {FORMAT_VERSION}); use a newer concord-topo")]
    NewerFormat { found: u32 },
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("{0} bytes after the payload: not a backup file written whole")]
    TrailingBytes(u64),
    #[error("checksum mismatch: the payload is damaged")]
    Checksum,
    #[error("the payload does not decode: {0}")]
    Decode(String),
    #[error("the header says version {header} / configHash {header_hash}, the payload holds version {payload} / configHash {payload_hash}")]
    HeaderMismatch {
        header: u64,
        header_hash: String,
        payload: u64,
        payload_hash: String,
    },
}

/// The backup file of `state`.
pub fn encode(state: &TopologyState) -> Vec<u8> {
    let payload = postcard::to_stdvec(state).expect("the topology state always serializes");
    let hash = state.config_hash().as_bytes();
    let hash_len = u16::try_from(hash.len()).expect("a configHash is short");
    let mut out = Vec::with_capacity(64 + hash.len() + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&state.version().to_le_bytes());
    out.extend_from_slice(&hash_len.to_le_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    out
}

/// Reads the header and checks the payload against it (length and checksum),
/// without decoding the payload.
pub fn verify(file: &[u8]) -> Result<(BackupHeader, &[u8]), BackupError> {
    let mut r = Reader { rest: file };
    if file.len() < MAGIC.len() || file[..MAGIC.len()] != MAGIC {
        return Err(BackupError::WrongMagic);
    }
    r.take(MAGIC.len(), "magic")?;
    let format_version = u32::from_le_bytes(r.array("format version")?);
    if format_version > FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            found: format_version,
        });
    }
    let version = u64::from_le_bytes(r.array("version")?);
    let hash_len = u16::from_le_bytes(r.array("configHash length")?);
    let config_hash = std::str::from_utf8(r.take(hash_len.into(), "configHash")?)
        .map_err(|_| BackupError::Decode("the configHash is not UTF-8".into()))?
        .to_string();
    let payload_len = u64::from_le_bytes(r.array("payload length")?);
    let sha256: [u8; 32] = r.array("checksum")?;
    let have = r.rest.len() as u64;
    if have < payload_len {
        return Err(BackupError::Truncated(format!(
            "the header announces {payload_len} payload bytes, the file holds {have}"
        )));
    }
    if have > payload_len {
        return Err(BackupError::TrailingBytes(have - payload_len));
    }
    let payload = r.rest;
    if Sha256::digest(payload).as_slice() != sha256 {
        return Err(BackupError::Checksum);
    }
    let header = BackupHeader {
        format_version,
        version,
        config_hash,
        payload_len,
        sha256,
    };
    Ok((header, payload))
}

/// Verifies the file and decodes its state; the header must describe that state.
pub fn decode(file: &[u8]) -> Result<(BackupHeader, TopologyState), BackupError> {
    let (header, payload) = verify(file)?;
    let state: TopologyState =
        postcard::from_bytes(payload).map_err(|e| BackupError::Decode(e.to_string()))?;
    if state.version() != header.version || state.config_hash() != header.config_hash {
        return Err(BackupError::HeaderMismatch {
            header: header.version,
            header_hash: header.config_hash,
            payload: state.version(),
            payload_hash: state.config_hash().to_string(),
        });
    }
    Ok((header, state))
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BackupError> {
        if self.rest.len() < n {
            return Err(BackupError::Truncated(format!(
                "the file ends inside the {what}"
            )));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BackupError> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }
}

#[cfg(test)]
#[path = "backup_test.rs"]
mod tests;
