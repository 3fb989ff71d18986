//! `snapshot save FILE` and `snapshot inspect FILE`: backups of the replicated state
//! (`GET /api/admin/snapshot`, taken at a linearizable read point), in the file
//! format of `concord_api::backup`.
//!
//! `save` verifies what the server sent before it writes anything, and writes the
//! file whole or not at all (a temporary file in the same directory, fsynced, then
//! renamed). `inspect` reads a file, verifies it completely (checksum, decoding,
//! header against payload) and prints its header. A bad file is an input error
//! (exit 2).

use std::io::Write as _;
use std::path::Path;

use concord_api::backup::{self, BackupHeader};
use concord_model::TopologyState;
use serde_json::json;

use crate::answer::refusal;
use crate::cli::Output;
use crate::error::{CtlError, Result};
use crate::render::{emit, fields};
use crate::transport::{Request, Transport};

/// `snapshot save FILE`.
pub fn save(t: &Transport, out: Output, file: &Path) -> Result<()> {
    let reply = t.call(&Request::get("/api/admin/snapshot"))?;
    if !(200..300).contains(&reply.status) {
        return Err(refusal(&reply));
    }
    let (header, state) = backup::decode(&reply.body).map_err(|e| {
        CtlError::refused(format!(
            "the server's snapshot failed verification ({e}); nothing written"
        ))
    })?;
    write_whole(file, &reply.body)
        .map_err(|e| CtlError::Usage(format!("{}: {e}; nothing written", file.display())))?;
    describe(out, file, &header, &state);
    Ok(())
}

/// `snapshot inspect FILE`.
pub fn inspect(out: Output, file: &Path) -> Result<()> {
    let bytes =
        std::fs::read(file).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    let (header, state) =
        backup::decode(&bytes).map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    describe(out, file, &header, &state);
    Ok(())
}

fn describe(out: Output, file: &Path, header: &BackupHeader, state: &TopologyState) {
    let history = state.history();
    let json = json!({
        "file": file.display().to_string(),
        "formatVersion": header.format_version,
        "version": header.version,
        "configHash": header.config_hash,
        "payloadBytes": header.payload_len,
        "sha256": header.sha256_hex(),
        "checksum": "ok",
        "shards": state.shard_count(),
        "nodes": state.node_count(),
        "events": history.len(),
        "oldestEventVersion": history.oldest_version(),
    });
    emit(out, &json, || {
        let events = match history.oldest_version() {
            Some(oldest) => format!("{} (versions {oldest}..={})", history.len(), header.version),
            None => "0".into(),
        };
        fields(&[
            ("file", file.display().to_string()),
            ("format", header.format_version.to_string()),
            ("version", header.version.to_string()),
            ("configHash", header.config_hash.clone()),
            ("payload bytes", header.payload_len.to_string()),
            ("sha256", header.sha256_hex()),
            ("checksum", "ok".into()),
            ("shards", state.shard_count().to_string()),
            ("nodes", state.node_count().to_string()),
            ("events", events),
        ])
    });
}

/// Writes `bytes` to `file` atomically: all of it, durably, or nothing.
fn write_whole(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ckv-backup.")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}
