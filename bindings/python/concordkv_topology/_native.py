"""ctypes declarations of libconcordkv_topology (mirrors include/concordkv_topology.h)
and the loader that finds the built library."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import List, Optional

c_result = ctypes.c_uint32

OK = 0
NULL_PARAMETER = 1
PANIC = 2
INVALID_PARAMETER = 3
INVALID_SERVER = 4
BUFFER_TOO_SMALL = 5
EMPTY_KEY = 6
NOT_READY = 7
NO_SHARDS = 8
TIMEOUT = 9
UNREACHABLE = 10
NOT_FOUND = 11
THREAD_FAILED = 12
INVALID_TLS = 13

HEALTH = {0: "unknown", 1: "healthy", 2: "degraded", 3: "unhealthy"}
SHARD_STATUS = {1: "active", 2: "migrating", 3: "readonly", 4: "offline"}


class Node(ctypes.Structure):
    _fields_ = [
        ("node_id", ctypes.c_char_p),
        ("address", ctypes.c_char_p),
        ("health", ctypes.c_uint32),
    ]


class RouteC(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint64),
        ("key_hash", ctypes.c_uint64),
        ("epoch", ctypes.c_uint64),
        ("status", ctypes.c_uint32),
        ("range_start", ctypes.c_uint64),
        ("range_end", ctypes.c_uint64),
        ("range_to_end", ctypes.c_bool),
        ("shard_id", ctypes.c_char_p),
        ("primary", Node),
        ("replicas", ctypes.POINTER(Node)),
        ("replica_count", ctypes.c_size_t),
    ]


class RouteBuffers(ctypes.Structure):
    _fields_ = [
        ("replicas", ctypes.POINTER(Node)),
        ("replicas_len", ctypes.c_size_t),
        ("strings", ctypes.POINTER(ctypes.c_char)),
        ("strings_len", ctypes.c_size_t),
        ("replicas_needed", ctypes.c_size_t),
        ("strings_needed", ctypes.c_size_t),
    ]


class EventC(ctypes.Structure):
    _fields_ = [
        ("event_type", ctypes.c_uint32),
        ("type_name", ctypes.c_char_p),
        ("version", ctypes.c_uint64),
        ("timestamp", ctypes.c_uint64),
        ("shard_id", ctypes.c_char_p),
        ("node_id", ctypes.c_char_p),
    ]


class ChangeC(ctypes.Structure):
    _fields_ = [
        ("previous_version", ctypes.c_uint64),
        ("version", ctypes.c_uint64),
        ("reset", ctypes.c_bool),
        ("events", ctypes.POINTER(EventC)),
        ("event_count", ctypes.c_size_t),
    ]


class StatsC(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "version",
            "snapshots_loaded",
            "versions_applied",
            "events_applied",
            "duplicates_skipped",
            "resyncs",
            "failovers",
            "streams_opened",
            "polls",
            "stale_reports",
            "refreshes",
        )
    ] + [("current_server", ctypes.c_size_t), ("streaming", ctypes.c_bool)]


CHANGE_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ChangeC))

_P = ctypes.c_void_p
_SIGNATURES = {
    "concordkv_result_message": (c_result, [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "concordkv_version": (ctypes.c_char_p, []),
    "concordkv_key_hash": (c_result, [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64)]),
    "concordkv_options_new": (c_result, [ctypes.POINTER(_P)]),
    "concordkv_options_free": (None, [_P]),
    "concordkv_options_add_server": (c_result, [_P, ctypes.c_char_p]),
    "concordkv_options_set_timeouts": (c_result, [_P, ctypes.c_uint32, ctypes.c_uint32]),
    "concordkv_options_set_backoff": (c_result, [_P, ctypes.c_uint32, ctypes.c_uint32]),
    "concordkv_options_set_auth_token": (c_result, [_P, ctypes.c_char_p]),
    "concordkv_options_set_consistency": (c_result, [_P, ctypes.c_uint32]),
    "concordkv_options_set_ca_file": (c_result, [_P, ctypes.c_char_p]),
    "concordkv_options_set_client_cert_file": (c_result, [_P, ctypes.c_char_p]),
    "concordkv_options_set_client_key_file": (c_result, [_P, ctypes.c_char_p]),
    "concordkv_options_set_stale_refresh_interval": (c_result, [_P, ctypes.c_uint32]),
    "concordkv_client_new": (c_result, [_P, ctypes.POINTER(_P)]),
    "concordkv_client_free": (None, [_P]),
    "concordkv_client_wait_for_version": (c_result, [_P, ctypes.c_uint64, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64)]),
    "concordkv_client_version": (c_result, [_P, ctypes.POINTER(ctypes.c_uint64)]),
    "concordkv_client_route": (c_result, [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(RouteBuffers), ctypes.POINTER(RouteC)]),
    "concordkv_client_snapshot_json": (c_result, [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "concordkv_client_config_hash": (c_result, [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "concordkv_client_last_error": (c_result, [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "concordkv_client_report_stale": (c_result, [_P, ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_bool)]),
    "concordkv_client_on_change": (c_result, [_P, CHANGE_CALLBACK, _P, ctypes.POINTER(ctypes.c_uint64)]),
    "concordkv_client_remove_listener": (c_result, [_P, ctypes.c_uint64]),
    "concordkv_client_stats": (c_result, [_P, ctypes.POINTER(StatsC)]),
}

ENV_VAR = "CONCORDKV_TOPOLOGY_LIB"
LIB_NAME = "libconcordkv_topology.so"


def _candidates() -> List[Path]:
    """Where the library is looked for: bundled in this package (what `pip install`
    puts there), then next to a cargo build of the repository this package sits in
    (release, then debug) when it is used from a source checkout."""
    here = Path(__file__).resolve().parent
    root = here.parents[2] if len(here.parents) > 2 else here
    return [here / LIB_NAME] + [root / "target" / profile / LIB_NAME for profile in ("release", "debug")]


def find_library(path: Optional[str] = None) -> Path:
    """`path`, else $CONCORDKV_TOPOLOGY_LIB, else the bundled library, else
    target/{release,debug} of the source checkout."""
    chosen = path or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    for candidate in _candidates():
        if candidate.exists():
            return candidate
    raise OSError(
        f"{LIB_NAME} not found: install the package with pip (it bundles the library), "
        f"set {ENV_VAR}, or run `cargo build -p concord-client`"
    )


_lib: Optional[ctypes.CDLL] = None


def lib() -> ctypes.CDLL:
    """The loaded library with every prototype declared (loaded once)."""
    global _lib
    if _lib is None:
        loaded = ctypes.CDLL(str(find_library()))
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(loaded, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = loaded
    return _lib
