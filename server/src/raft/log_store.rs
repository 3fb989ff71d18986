//! Durable Raft log and vote: openraft's `RaftLogStorage` on the `raft-log` crate.
//!
//! `raft-log` (by openraft's author) keeps one append-only WAL of records (vote, entry,
//! commit, truncate, purge) in chunk files, replays it at open, and holds recent
//! payloads in memory. Its writes are buffered by the caller and written and fsync'd
//! by its own flush thread, which calls a callback when the data is on disk.
//!
//! How that meets openraft's contract:
//! - `append` buffers the entries in the WAL (so readers see them at once), asks for
//!   a synced flush, and returns; the flush thread's completion crosses to the Raft
//!   executor through a oneshot, and a task there reports the `IOFlushed` callback.
//!   openraft therefore hears "persisted" only after fsync.
//! - `save_vote`, `truncate_after` and `purge` wait for their synced flush before
//!   returning: votes must be durable before the call returns, and the other two are
//!   rare enough that waiting costs nothing.
//! - all writes go through the one WAL in call order, so they are serialized as
//!   openraft requires.
//!
//! Entries are stored postcard-encoded (whole `C::Entry`, log id included). postcard
//! is compact (varints, no field names), has a documented stable wire format and is
//! maintained; the price is that it is not self-describing, so the serde impls of
//! the application data must not depend on it (no `skip_serializing_if`, `flatten`,
//! or untagged enums in `C::D`).
//!
//! raft-log's WAL keeps flush-latency histograms (`base2histogram`); that crate is
//! patched in `vendor/base2histogram` so it builds its bucket table for the one width
//! used (~6 KB) instead of for all 16 at start (~26 MB of RSS).
//!
//! The store is single-threaded (`Rc<RefCell<..>>`, no borrow held across an await),
//! like the rest of Raft on the control executor. Reads of entries evicted from the
//! payload cache and chunk rotation do small blocking file I/O on that executor.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::VoteOf;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftVote;
use openraft::OptionalSend;
use openraft::RaftTypeConfig;
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::RaftLog;

/// Tuning of the on-disk log. The defaults suit a topology service: a small log that
/// is compacted by snapshots, in a process that should stay well under 50 MB.
#[derive(Debug, Clone)]
pub struct LogStoreConfig {
    /// Size at which a chunk file is closed and a new one started. Only closed chunks
    /// can be deleted after a purge, and only their payloads can leave the cache.
    pub chunk_max_size: usize,
    /// Upper bound of payload bytes kept in memory (entries of the open chunk stay
    /// cached regardless).
    pub log_cache_capacity: usize,
    /// Upper bound of payloads kept in memory.
    pub log_cache_max_items: usize,
    /// Read buffer used to replay one chunk at open.
    pub read_buffer_size: usize,
}

impl Default for LogStoreConfig {
    fn default() -> Self {
        Self {
            chunk_max_size: 8 << 20,
            log_cache_capacity: 8 << 20,
            log_cache_max_items: 50_000,
            read_buffer_size: 1 << 20,
        }
    }
}

/// Failure to open a [`LogStore`].
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The log directory could not be created.
    #[error("cannot create the raft log directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// raft-log takes its directory as a string.
    #[error("the raft log directory {0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// raft-log could not open or replay the log (includes: the directory is locked
    /// by another process).
    #[error("cannot open the raft log in {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// openraft log id in raft-log's record format.
pub struct WalLogId<C: RaftTypeConfig>(LogIdOf<C>);

/// openraft vote in raft-log's record format.
pub struct WalVote<C: RaftTypeConfig>(VoteOf<C>);

macro_rules! wal_wrapper_common {
    ($name:ident) => {
        impl<C: RaftTypeConfig> Clone for $name<C> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<C: RaftTypeConfig> fmt::Debug for $name<C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl<C: RaftTypeConfig> PartialEq for $name<C> {
            fn eq(&self, other: &Self) -> bool {
                self.0 == other.0
            }
        }

        impl<C: RaftTypeConfig> Eq for $name<C> {}

        impl<C: RaftTypeConfig> raft_log::codeq::Encode for $name<C> {
            fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
                encode(&self.0)?.encode(w)
            }
        }

        impl<C: RaftTypeConfig> raft_log::codeq::Decode for $name<C> {
            fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
                let buf: Vec<u8> = raft_log::codeq::Decode::decode(r)?;
                decode(&buf).map(Self)
            }
        }
    };
}

wal_wrapper_common!(WalLogId);
wal_wrapper_common!(WalVote);

impl<C: RaftTypeConfig> PartialOrd for WalLogId<C> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<C: RaftTypeConfig> Ord for WalLogId<C> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl<C: RaftTypeConfig> PartialOrd for WalVote<C> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        // raft-log refuses a vote that is not >= the stored one; openraft's own vote
        // order (partial: two uncommitted votes of one term for different nodes are
        // incomparable) is the one that check must use.
        RaftVote::partial_cmp(&self.0, &other.0)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    postcard::to_stdvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn decode<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Result<T, io::Error> {
    postcard::from_bytes(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Completion of a raft-log flush, sent from its flush thread to the Raft executor.
pub struct FlushDone(tokio::sync::oneshot::Sender<io::Result<()>>);

impl raft_log::Callback for FlushDone {
    fn send(self, res: Result<(), io::Error>) {
        // The receiver is gone only if the store's user stopped waiting (shutdown).
        let _ = self.0.send(res);
    }
}

/// raft-log's type parameters for a given openraft type config.
pub struct RaftLogTypes<C>(PhantomData<C>);

impl<C> fmt::Debug for RaftLogTypes<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftLogTypes")
    }
}

impl<C> Default for RaftLogTypes<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<C> Clone for RaftLogTypes<C> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

impl<C> PartialEq for RaftLogTypes<C> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<C> Eq for RaftLogTypes<C> {}

impl<C> raft_log::Types for RaftLogTypes<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    type LogId = WalLogId<C>;
    /// A postcard-encoded `C::Entry`.
    type LogPayload = Vec<u8>;
    type Vote = WalVote<C>;
    type Callback = FlushDone;
    type UserData = ();

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

type SharedLog<C> = Rc<RefCell<RaftLog<RaftLogTypes<C>>>>;

/// Durable Raft log storage for any type config whose log id and vote are
/// `Send + Sync` (raft-log's flush thread holds copies of them).
pub struct LogStore<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    log: SharedLog<C>,
    dir: PathBuf,
}

/// Reader handed to openraft's replication tasks; shares the store's log.
pub struct LogReader<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    log: SharedLog<C>,
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    /// Opens (creating if needed) the log in `dir` and replays it.
    ///
    /// Blocks while replaying; call it before the Raft node starts. Fails if another
    /// process (or another store in this one) holds the directory.
    pub fn open(dir: impl AsRef<Path>, config: &LogStoreConfig) -> Result<Self, LogStoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| LogStoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let dir_str = dir
            .to_str()
            .ok_or_else(|| LogStoreError::NonUtf8Path(dir.clone()))?;

        let mut rl_config = raft_log::Config::new(dir_str);
        rl_config.wal.chunk_max_size = Some(config.chunk_max_size);
        rl_config.wal.read_buffer_size = Some(config.read_buffer_size);
        rl_config.log_cache_capacity = Some(config.log_cache_capacity);
        rl_config.log_cache_max_items = Some(config.log_cache_max_items);

        let log = RaftLog::open(Arc::new(rl_config)).map_err(|source| LogStoreError::Open {
            path: dir.clone(),
            source,
        })?;

        Ok(Self {
            log: Rc::new(RefCell::new(log)),
            dir,
        })
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues a synced flush of everything written so far; the receiver resolves
    /// once it is on disk.
    fn flush_synced(&self) -> io::Result<tokio::sync::oneshot::Receiver<io::Result<()>>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.log.borrow_mut().flush(true, Some(FlushDone(tx)))?;
        Ok(rx)
    }

    async fn wait_flushed(rx: tokio::sync::oneshot::Receiver<io::Result<()>>) -> io::Result<()> {
        rx.await.map_err(|_| {
            io::Error::other("raft-log flush worker stopped before the flush completed")
        })?
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let log = self.log.borrow();
        let state = log.log_state();
        Ok(LogState {
            last_purged_log_id: state.purged().map(|id| id.0.clone()),
            // raft-log moves `last` up to `purged` when everything is purged, which is
            // what openraft expects for an empty log.
            last_log_id: state.last().map(|id| id.0.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            log: self.log.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.log.borrow_mut().save_vote(WalVote(vote.clone()))?;
        let rx = self.flush_synced()?;
        Self::wait_flushed(rx).await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let Some(committed) = committed else {
            return Ok(());
        };
        let committed = WalLogId(committed);
        let mut log = self.log.borrow_mut();
        let state = log.log_state();
        // The committed id is a recovery hint; persisting a lower one is safe, a wrong
        // one is not. raft-log refuses an id beyond its last entry (possible right
        // after a snapshot is installed, before the log is purged up to it), so that
        // one is skipped, as is a regression.
        if Some(&committed) > state.last() || Some(&committed) <= state.committed() {
            return Ok(());
        }
        log.commit(committed)?;
        // Written in order with everything else, made durable by the next synced
        // flush: no extra fsync per commit.
        log.flush(false, None)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self
            .log
            .borrow()
            .log_state()
            .committed()
            .map(|id| id.0.clone()))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode everything first so that a bad entry leaves the log untouched.
        let records = entries
            .into_iter()
            .map(|entry| Ok((WalLogId(entry.log_id()), encode(&entry)?)))
            .collect::<Result<Vec<_>, io::Error>>()?;
        if records.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }

        self.log.borrow_mut().append(records)?;
        let rx = self.flush_synced()?;

        // Dropping the handle detaches the task; it ends when the flush does.
        drop(C::spawn(async move {
            callback.io_completed(Self::wait_flushed(rx).await);
        }));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let keep_until = last_log_id.as_ref().map_or(0, |id| id.index + 1);
        {
            let mut log = self.log.borrow_mut();
            let end = log.log_state().last().map_or(0, |id| id.0.index + 1);
            // Nothing after `last_log_id`: raft-log would not find it to truncate at.
            if keep_until >= end {
                return Ok(());
            }
            log.truncate(keep_until)?;
        }
        let rx = self.flush_synced()?;
        Self::wait_flushed(rx).await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        self.log.borrow_mut().purge(WalLogId(log_id))?;
        // A synced flush is also what lets raft-log delete the purged chunk files.
        let rx = self.flush_synced()?;
        Self::wait_flushed(rx).await
    }
}

/// `[start, end)` of a range of log indexes.
fn index_range(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    LogIdOf<C>: Send + Sync,
    VoteOf<C>: Send + Sync,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = index_range(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        let log = self.log.borrow();
        log.read(start, end)
            .map(|res| {
                let (_id, payload) = res?;
                decode::<C::Entry>(&payload)
            })
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.log.borrow().log_state().vote().map(|v| v.0.clone()))
    }
}

#[cfg(test)]
#[path = "log_store_test.rs"]
mod tests;
