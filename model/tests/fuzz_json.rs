//! Fuzz target: the model's JSON decoding (`Operation`, `Command`, `TopologyEvent`,
//! a list of events, `TopologySnapshot`, `TopologyState`) with serde_json and
//! simd-json, and of `Command` and `TopologyState` through postcard (the Raft log's
//! and snapshots' encoding), on arbitrary bytes and on valid documents mutated in
//! their structure and then in their bytes, so that most inputs are nearly valid.
//!
//! Whatever the input: no panic. Whatever decodes re-encodes and decodes to the same
//! value with both JSON parsers, and both parsers agree when both accept. A decoded
//! command is applied to a bootstrapped state under every step invariant; a decoded
//! state satisfies the invariants that `TopologyState`'s own validation promises.
//!
//! A plain `cargo test` runs each for bolero's default second; longer:
//! `BOLERO_RANDOM_TEST_TIME_MS=180000 cargo test --release -p concord-model --test
//! fuzz_json -- --nocapture`, or `cargo bolero test` with a coverage-guided engine.

mod common;

use std::fmt::Debug;
use std::sync::OnceLock;

use bolero::{produce_with, TypeGenerator};
use common::*;
use concord_model::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Field names, tags and enum spellings of the wire types, so that generated objects
/// hit the real fields.
const WORDS: &[&str] = &[
    "op",
    "nodeId",
    "address",
    "labels",
    "shardId",
    "keyRange",
    "start",
    "end",
    "primaryNode",
    "replicaNodes",
    "status",
    "at",
    "newShardId",
    "with",
    "from",
    "to",
    "percent",
    "nodes",
    "shardCount",
    "replicationFactor",
    "updates",
    "health",
    "failureCount",
    "lastSeen",
    "lastError",
    "timestampMs",
    "expectedVersion",
    "ops",
    "type",
    "version",
    "timestamp",
    "oldValue",
    "newValue",
    "epoch",
    "lastUpdate",
    "migration",
    "startedAt",
    "shards",
    "shardMap",
    "nodeStatus",
    "configHash",
    "hashFunction",
    "history",
    "registerNode",
    "removeNode",
    "createShard",
    "updateShard",
    "removeShard",
    "splitShard",
    "mergeShards",
    "startMigration",
    "migrationProgress",
    "completeMigration",
    "cancelMigration",
    "bootstrap",
    "setHealth",
    "active",
    "migrating",
    "readonly",
    "offline",
    "healthy",
    "unhealthy",
    "unknown",
    "NodeJoin",
    "ShardAdd",
    "ShardSplit",
    "ShardMerge",
    "n0",
    "n1",
    "shard-0000",
    "0000000000000000",
    "8000000000000000",
    "ffffffffffffffff",
];

#[derive(Clone, Debug, TypeGenerator)]
enum Word {
    Known(u8),
    Any(String),
}

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(i) => WORDS[*i as usize % WORDS.len()].to_string(),
            Word::Any(s) => s.clone(),
        }
    }
}

/// A JSON value to put somewhere (bolero bounds the nesting depth).
#[derive(Clone, Debug, TypeGenerator)]
enum Gen {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(Word),
    List(#[generator(produce_with::<Vec<Gen>>().len(0usize..4))] Vec<Gen>),
    Object(#[generator(produce_with::<Vec<(Word, Gen)>>().len(0usize..4))] Vec<(Word, Gen)>),
}

impl Gen {
    fn value(&self) -> Value {
        match self {
            Gen::Null => Value::Null,
            Gen::Bool(b) => Value::from(*b),
            Gen::Unsigned(n) => Value::from(*n),
            Gen::Signed(n) => Value::from(*n),
            Gen::Float(f) => Value::from(*f), // NaN and infinities become null
            Gen::Text(w) => Value::from(w.text()),
            Gen::List(items) => items.iter().map(Gen::value).collect(),
            Gen::Object(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.text(), v.value())).collect())
            }
        }
    }
}

/// One change to a document at the place a path of child picks leads to.
#[derive(Clone, Debug, TypeGenerator)]
enum Edit {
    Remove(#[generator(produce_with::<Vec<u8>>().len(1usize..5))] Vec<u8>),
    Replace(
        #[generator(produce_with::<Vec<u8>>().len(0usize..5))] Vec<u8>,
        Gen,
    ),
    /// Adds (or overwrites) a field of the object there.
    Insert(
        #[generator(produce_with::<Vec<u8>>().len(0usize..5))] Vec<u8>,
        Word,
        Gen,
    ),
}

/// A byte-level change after the structural ones (positions wrap around).
#[derive(Clone, Debug, TypeGenerator)]
enum ByteEdit {
    Set(u16, u8),
    Insert(u16, u8),
    Delete(u16),
    Truncate(u16),
}

#[derive(Clone, Copy, Debug, TypeGenerator)]
enum Base {
    Command,
    Operation,
    Events,
    Event,
    Snapshot,
    State,
}

#[derive(Clone, Debug, TypeGenerator)]
enum Input {
    Bytes(Vec<u8>),
    Mutated {
        #[generator(produce_with::<Vec<(AOp, bool)>>().len(1usize..4))]
        ops: Vec<(AOp, bool)>,
        base: Base,
        #[generator(produce_with::<Vec<Edit>>().len(0usize..3))]
        edits: Vec<Edit>,
        #[generator(produce_with::<Vec<ByteEdit>>().len(0usize..2))]
        bytes: Vec<ByteEdit>,
    },
}

fn bootstrapped() -> &'static TopologyState {
    static STATE: OnceLock<TopologyState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut st = TopologyState::new(16);
        st.apply(&bootstrap_command())
            .expect("the bootstrap applies");
        st
    })
}

/// A valid document of the `base` kind, built from the generated operations.
fn valid_document(ops: &[(AOp, bool)], base: Base) -> Value {
    let start = bootstrapped();
    let command = build(start, ops, None, 7, &mut 0);
    let mut after = start.clone();
    let events = after.apply(&command).unwrap_or_default();
    fn to<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("the wire types serialize")
    }
    match base {
        Base::Command => to(&command),
        Base::Operation => command.ops.first().map_or(Value::Null, to),
        Base::Events => to(&events),
        Base::Event => events.first().map_or(Value::Null, to),
        Base::Snapshot => to(&after.to_snapshot()),
        Base::State => to(&after),
    }
}

/// The value a path of picks leads to; `None` when it ends early at a scalar.
fn slot<'a>(doc: &'a mut Value, path: &[u8]) -> Option<&'a mut Value> {
    let Some((&pick, rest)) = path.split_first() else {
        return Some(doc);
    };
    let child = match doc {
        Value::Array(items) if !items.is_empty() => {
            let n = items.len();
            &mut items[pick as usize % n]
        }
        Value::Object(fields) if !fields.is_empty() => {
            let n = fields.len();
            fields.values_mut().nth(pick as usize % n)?
        }
        _ => return None,
    };
    slot(child, rest)
}

fn apply_edit(doc: &mut Value, edit: &Edit) {
    match edit {
        Edit::Remove(path) => {
            let (last, parent) = path.split_last().expect("at least one pick");
            match slot(doc, parent) {
                Some(Value::Array(items)) if !items.is_empty() => {
                    let n = items.len();
                    items.remove(*last as usize % n);
                }
                Some(Value::Object(fields)) if !fields.is_empty() => {
                    let key = fields.keys().nth(*last as usize % fields.len()).cloned();
                    fields.remove(&key.expect("a key at that index"));
                }
                _ => {}
            }
        }
        Edit::Replace(path, value) => {
            if let Some(v) = slot(doc, path) {
                *v = value.value();
            }
        }
        Edit::Insert(path, key, value) => {
            if let Some(Value::Object(fields)) = slot(doc, path) {
                fields.insert(key.text(), value.value());
            }
        }
    }
}

fn apply_byte_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let at = |p: u16, len: usize| (p as usize) % (len + 1);
    match *edit {
        ByteEdit::Set(p, b) if !bytes.is_empty() => {
            let i = p as usize % bytes.len();
            bytes[i] = b;
        }
        ByteEdit::Insert(p, b) => bytes.insert(at(p, bytes.len()), b),
        ByteEdit::Delete(p) if !bytes.is_empty() => {
            bytes.remove(p as usize % bytes.len());
        }
        ByteEdit::Truncate(p) => bytes.truncate(at(p, bytes.len())),
        _ => {}
    }
}

fn input_bytes(input: &Input) -> Vec<u8> {
    match input {
        Input::Bytes(b) => b.clone(),
        Input::Mutated {
            ops,
            base,
            edits,
            bytes,
        } => {
            let mut doc = valid_document(ops, *base);
            for e in edits {
                apply_edit(&mut doc, e);
            }
            let mut out = serde_json::to_vec(&doc).expect("a Value serializes");
            for b in bytes {
                apply_byte_edit(&mut out, b);
            }
            out
        }
    }
}

fn simd_decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    simd_json::serde::from_slice(&mut bytes.to_vec()).ok()
}

/// Decodes `bytes` as `T` with both parsers; checks round trips and agreement.
fn check_json<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let by_serde = serde_json::from_slice::<T>(bytes).ok();
    let by_simd = simd_decode::<T>(bytes);
    for v in [&by_serde, &by_simd].into_iter().flatten() {
        let again = serde_json::to_vec(v).expect("a decoded value re-encodes");
        assert_eq!(&serde_json::from_slice::<T>(&again).unwrap(), v);
        assert_eq!(&simd_decode::<T>(&again).expect("simd-json decodes it"), v);
    }
    if let (Some(a), Some(b)) = (&by_serde, &by_simd) {
        assert_eq!(a, b, "serde_json and simd-json disagree");
    }
    by_serde.or(by_simd)
}

fn check_postcard<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let v = postcard::from_bytes::<T>(bytes).ok()?;
    let again = postcard::to_stdvec(&v).expect("a decoded value re-encodes");
    assert_eq!(postcard::from_bytes::<T>(&again).unwrap(), v);
    Some(v)
}

/// A decoded command is applied like any other; a decoded state must be sound.
fn check_decoded(command: Option<Command>, state: Option<TopologyState>) {
    if let Some(c) = command {
        let mut server = bootstrapped().clone();
        let mut client = server.clone();
        apply_and_check(&mut server, &mut client, &c);
    }
    if let Some(st) = state {
        assert_partition(&st);
        assert_consistent(&st);
    }
}

#[test]
fn json_decoding_never_panics_and_round_trips() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        let bytes = input_bytes(input);
        let op = check_json::<Operation>(&bytes);
        let command = check_json::<Command>(&bytes);
        check_json::<TopologyEvent>(&bytes);
        check_json::<Vec<TopologyEvent>>(&bytes);
        check_json::<TopologySnapshot>(&bytes);
        let state = check_json::<TopologyState>(&bytes);
        check_decoded(command.or(op.map(|op| Command::single(7, op))), state);
    });
}

#[test]
fn postcard_decoding_never_panics_and_round_trips() {
    bolero::check!().with_type::<Input>().for_each(|input| {
        // The JSON document wrapped as postcard writes it: a length, then the bytes.
        let json = input_bytes(input);
        let mut bytes = postcard::to_stdvec(&serde_bytes_like(&json)).unwrap();
        if let Input::Bytes(raw) = input {
            bytes.clone_from(raw);
        }
        let command = check_postcard::<Command>(&bytes);
        let state = check_postcard::<TopologyState>(&bytes);
        check_decoded(command, state);
    });
}

/// Serializes as a byte string (what the model's binary codec writes).
fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
    struct B<'a>(&'a [u8]);
    impl Serialize for B<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    B(bytes)
}
