"""ConcordKV's caching router client for Python: a ctypes binding of
libconcordkv_topology (the Rust client's C ABI).

    from concordkv_topology import Client
    with Client(["127.0.0.1:7070"]) as client:
        client.wait_ready(10.0)
        route = client.route(b"user:42")
        print(route.shard_id, route.primary.address)

https:// servers need the CA that signed their certificates (the system's roots
are never used), and a client certificate where the servers require one:

    Client(["https://topo-1:7443"], ca_file="ca.pem",
           client_cert_file="client.pem", client_key_file="client.key")

Routing never touches the network: the library keeps a local copy of the topology
current on its own thread. Change callbacks run on that thread (holding the GIL
while they run): keep them short and never block in them.
"""

from __future__ import annotations

import ctypes
import json
import threading
from dataclasses import dataclass
from os import PathLike, fspath
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from . import _native as n

__all__ = ["Client", "Route", "Node", "Event", "Change", "TopologyError", "key_hash", "version"]


class TopologyError(Exception):
    """A library call failed; `code` is the concordkv_result number."""

    def __init__(self, code: int, context: str = "") -> None:
        self.code = code
        text = message(code)
        super().__init__(f"{context}: {text} (code {code})" if context else f"{text} (code {code})")


def message(code: int) -> str:
    """The library's text for a result code (e.g. "no shards")."""
    buf = ctypes.create_string_buffer(256)
    written = ctypes.c_size_t(0)
    n.lib().concordkv_result_message(code, buf, len(buf), ctypes.byref(written))
    return buf.value.decode()


def _check(code: int, context: str) -> None:
    if code != n.OK:
        raise TopologyError(code, context)


def version() -> str:
    """The library's version ("0.1.0")."""
    return n.lib().concordkv_version().decode()


def _key_bytes(key: Union[bytes, str]) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def key_hash(key: Union[bytes, str]) -> int:
    """The routing hash of a key: first 8 bytes of SHA-256, big-endian."""
    data = _key_bytes(key)
    out = ctypes.c_uint64(0)
    _check(n.lib().concordkv_key_hash(data, len(data), ctypes.byref(out)), "key_hash")
    return out.value


@dataclass(frozen=True)
class Node:
    """A data node a route names: its id, address and health ("unknown",
    "healthy", "degraded" or "unhealthy")."""

    node_id: str
    address: str
    health: str


@dataclass(frozen=True)
class Route:
    """Where a key goes: the owning shard (id, epoch, status "active",
    "migrating", "readonly" or "offline"), its primary and replicas, its hash range
    [range_start, range_end), and the topology version it was read from."""

    version: int
    key_hash: int
    epoch: int
    status: str
    shard_id: str
    primary: Node
    replicas: Tuple[Node, ...]
    range_start: int
    range_end: Optional[int]  # None: to the end of the hash space


@dataclass(frozen=True)
class Event:
    """One topology event (type e.g. "ShardSplit") of a change."""

    type: str
    version: int
    timestamp: int
    shard_id: Optional[str]
    node_id: Optional[str]


@dataclass(frozen=True)
class Change:
    """What a change callback receives: the versions before and after, whether the
    client reloaded the whole topology (`reset`, no events then), and the events."""

    previous_version: int
    version: int
    reset: bool
    events: Tuple[Event, ...]


def _node(c: n.Node) -> Node:
    return Node(c.node_id.decode(), c.address.decode(), n.HEALTH.get(c.health, "unknown"))


def _text(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode()


class Client:
    """A caching router client. Thread-safe; close() (or `with`) stops its thread.

    `servers`: "host:port" or "https://host:port" addresses of topology servers,
    tried in order and rotated on failure. Timeouts and backoff are in
    milliseconds. `auth_token`: the bearer token, where the servers require one for
    reads. `linearizable`: snapshots are read at a Raft read index. `ca_file` (for
    https://) and `client_cert_file`/`client_key_file` (where the servers require
    a client certificate) are PEM files. Raises TopologyError on a bad option.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        connect_timeout_ms: int = 2000,
        read_timeout_ms: int = 30000,
        backoff_min_ms: int = 100,
        backoff_max_ms: int = 5000,
        auth_token: Optional[str] = None,
        linearizable: bool = False,
        stale_refresh_interval_ms: int = 1000,
        ca_file: Optional[Union[str, PathLike]] = None,
        client_cert_file: Optional[Union[str, PathLike]] = None,
        client_key_file: Optional[Union[str, PathLike]] = None,
    ) -> None:
        lib = n.lib()
        self._handle: Optional[int] = None
        self._callbacks: Dict[int, Any] = {}
        self._lock = threading.Lock()
        opts = ctypes.c_void_p()
        _check(lib.concordkv_options_new(ctypes.byref(opts)), "options")
        try:
            for server in servers:
                _check(lib.concordkv_options_add_server(opts, server.encode()), f"server {server!r}")
            _check(lib.concordkv_options_set_timeouts(opts, connect_timeout_ms, read_timeout_ms), "timeouts")
            _check(lib.concordkv_options_set_backoff(opts, backoff_min_ms, backoff_max_ms), "backoff")
            if auth_token is not None:
                _check(lib.concordkv_options_set_auth_token(opts, auth_token.encode()), "auth_token")
            _check(lib.concordkv_options_set_consistency(opts, 1 if linearizable else 0), "consistency")
            for name, path, setter in (
                ("ca_file", ca_file, lib.concordkv_options_set_ca_file),
                ("client_cert_file", client_cert_file, lib.concordkv_options_set_client_cert_file),
                ("client_key_file", client_key_file, lib.concordkv_options_set_client_key_file),
            ):
                if path is not None:
                    _check(setter(opts, fspath(path).encode()), f"{name} {fspath(path)!r}")
            _check(
                lib.concordkv_options_set_stale_refresh_interval(opts, stale_refresh_interval_ms),
                "stale_refresh_interval",
            )
            handle = ctypes.c_void_p()
            _check(lib.concordkv_client_new(opts, ctypes.byref(handle)), "client")
            self._handle = handle.value
        finally:
            lib.concordkv_options_free(opts)

    def _h(self) -> int:
        if self._handle is None:
            raise TopologyError(n.NULL_PARAMETER, "the client is closed")
        return self._handle

    def close(self) -> None:
        """Stops the client's thread (no callback runs after this) and frees it."""
        handle, self._handle = self._handle, None
        if handle is not None:
            n.lib().concordkv_client_free(handle)
        self._callbacks.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def wait_for_version(self, version: int, timeout: float) -> int:
        """Waits up to `timeout` seconds until the local copy is at `version` or
        later; the version reached. Raises TopologyError (TIMEOUT) otherwise."""
        out = ctypes.c_uint64(0)
        code = n.lib().concordkv_client_wait_for_version(self._h(), version, int(timeout * 1000), ctypes.byref(out))
        _check(code, f"waiting for version {version} ({self.last_error()})")
        return out.value

    def wait_ready(self, timeout: float) -> int:
        """Waits until a topology is there; its version."""
        return self.wait_for_version(1, timeout)

    @property
    def version(self) -> int:
        """The version of the local copy (0 before the first topology arrived)."""
        out = ctypes.c_uint64(0)
        _check(n.lib().concordkv_client_version(self._h(), ctypes.byref(out)), "version")
        return out.value

    def route(self, key: Union[bytes, str]) -> Route:
        """Where `key` goes; never blocks on the network."""
        data = _key_bytes(key)
        replicas_len, strings_len = 8, 1024
        while True:
            replicas = (n.Node * replicas_len)()
            strings = ctypes.create_string_buffer(strings_len)
            bufs = n.RouteBuffers(
                ctypes.cast(replicas, ctypes.POINTER(n.Node)),
                replicas_len,
                ctypes.cast(strings, ctypes.POINTER(ctypes.c_char)),
                strings_len,
                0,
                0,
            )
            out = n.RouteC()
            code = n.lib().concordkv_client_route(self._h(), data, len(data), ctypes.byref(bufs), ctypes.byref(out))
            if code == n.BUFFER_TOO_SMALL:
                replicas_len = max(replicas_len, bufs.replicas_needed)
                strings_len = max(strings_len, bufs.strings_needed)
                continue
            _check(code, f"route {key!r}")
            return Route(
                version=out.version,
                key_hash=out.key_hash,
                epoch=out.epoch,
                status=n.SHARD_STATUS.get(out.status, "unknown"),
                shard_id=out.shard_id.decode(),
                primary=_node(out.primary),
                replicas=tuple(_node(out.replicas[i]) for i in range(out.replica_count)),
                range_start=out.range_start,
                range_end=None if out.range_to_end else out.range_end,
            )

    def _string(self, fn: Callable[..., int], context: str) -> str:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            needed = ctypes.c_size_t(0)
            code = fn(self._h(), buf, size, ctypes.byref(needed))
            if code == n.BUFFER_TOO_SMALL:
                size = needed.value + 1
                continue
            _check(code, context)
            return buf.raw[: needed.value].decode()

    def snapshot_json(self) -> str:
        """The local copy as the server's snapshot JSON."""
        return self._string(n.lib().concordkv_client_snapshot_json, "snapshot")

    def snapshot(self) -> Dict[str, Any]:
        """The local copy: snapshot_json(), parsed."""
        return json.loads(self.snapshot_json())

    def config_hash(self) -> str:
        """The configHash of the local copy."""
        return self._string(n.lib().concordkv_client_config_hash, "config_hash")

    def last_error(self) -> str:
        """Why the client last failed to reach a server ("" if it never did)."""
        if self._handle is None:
            return ""
        return self._string(n.lib().concordkv_client_last_error, "last_error")

    def report_stale(self, shard_id: str, epoch: int) -> bool:
        """A data node refused a route with this epoch; True if a refresh was scheduled."""
        out = ctypes.c_bool(False)
        _check(n.lib().concordkv_client_report_stale(self._h(), shard_id.encode(), epoch, ctypes.byref(out)), "report_stale")
        return out.value

    def stats(self) -> Dict[str, int]:
        """Counters of the client's thread (snapshots loaded, failovers, ...)."""
        out = n.StatsC()
        _check(n.lib().concordkv_client_stats(self._h(), ctypes.byref(out)), "stats")
        return {name: getattr(out, name) for name, _ in n.StatsC._fields_}

    def on_change(self, callback: Callable[[Change], None]) -> int:
        """Calls `callback(change)` on the client's thread after every change; an id."""

        def trampoline(_userdata: Optional[int], change_p: Any) -> None:
            c = change_p.contents
            events = tuple(
                Event(
                    c.events[i].type_name.decode(),
                    c.events[i].version,
                    c.events[i].timestamp,
                    _text(c.events[i].shard_id),
                    _text(c.events[i].node_id),
                )
                for i in range(c.event_count)
            )
            callback(Change(c.previous_version, c.version, c.reset, events))

        c_callback = n.CHANGE_CALLBACK(trampoline)
        listener = ctypes.c_uint64(0)
        _check(n.lib().concordkv_client_on_change(self._h(), c_callback, None, ctypes.byref(listener)), "on_change")
        with self._lock:
            # Kept alive until removed: the library calls it from its thread.
            self._callbacks[listener.value] = c_callback
        return listener.value

    def remove_listener(self, listener: int) -> None:
        """Once this returns, the callback never runs again."""
        _check(n.lib().concordkv_client_remove_listener(self._h(), listener), "remove_listener")
        with self._lock:
            self._callbacks.pop(listener, None)
