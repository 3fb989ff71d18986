"""Tests of the ctypes package against the built library and, when
CONCORDKV_TEST_SERVER (host:port) is set, a real topology server. The Rust
integration test tests/integration/client/python.rs runs them with both set, on
the package pip installed in a fresh virtual environment (CONCORDKV_TEST_INSTALLED=1);
otherwise they import the package from this source tree."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import unittest
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

if os.environ.get("CONCORDKV_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import concordkv_topology as kv  # noqa: E402
from concordkv_topology import _native as native  # noqa: E402

SERVER = os.environ.get("CONCORDKV_TEST_SERVER")


def http(method: str, path: str, body: Any = None) -> Dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{SERVER}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def owner(key: bytes) -> Dict[str, Any]:
    """The shard owning `key` according to the server's own shard list."""
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    for shard in http("GET", "/api/topology/shards")["shards"]:
        start = int(shard["keyRange"]["start"], 16)
        end = shard["keyRange"]["end"]
        if start <= h and (end == "" or h < int(end, 16)):
            return shard
    raise AssertionError(f"no shard owns {h:016x}")


class LibraryTests(unittest.TestCase):
    def test_version_and_key_hash_match_the_spec(self) -> None:
        self.assertRegex(kv.version(), r"^\d+\.\d+\.\d+$")
        for key in (b"user:1", b"a", "Straße".encode()):
            want = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
            self.assertEqual(kv.key_hash(key), want)
        with self.assertRaises(kv.TopologyError) as e:
            kv.key_hash(b"")
        self.assertEqual(e.exception.code, native.EMPTY_KEY)

    def test_bad_use_gets_documented_codes(self) -> None:
        for servers in ([], ["ftp://secure:1"], ["host:99999"]):
            with self.assertRaises(kv.TopologyError) as e:
                kv.Client(servers)
            self.assertEqual(e.exception.code, native.INVALID_SERVER, servers)
        with kv.Client(["127.0.0.1:1"], backoff_min_ms=10, backoff_max_ms=50) as client:
            with self.assertRaises(kv.TopologyError) as e:
                client.wait_ready(0.3)
            self.assertEqual(e.exception.code, native.UNREACHABLE)
            self.assertIn("127.0.0.1:1", client.last_error())
            for key, code in ((b"k", native.NOT_READY), (b"", native.EMPTY_KEY)):
                with self.assertRaises(kv.TopologyError) as e:
                    client.route(key)
                self.assertEqual(e.exception.code, code)
            with self.assertRaises(kv.TopologyError) as e:
                client.remove_listener(999)
            self.assertEqual(e.exception.code, native.NOT_FOUND)
        with self.assertRaises(kv.TopologyError):
            client.route(b"k")  # closed
        # https:// without a CA file: the system's roots are never trusted instead.
        with self.assertRaises(kv.TopologyError) as e:
            kv.Client(["https://127.0.0.1:1"])
        self.assertEqual(e.exception.code, native.INVALID_TLS)
        for option in ("ca_file", "client_cert_file", "client_key_file"):
            with self.assertRaises(kv.TopologyError) as e:
                kv.Client(["https://127.0.0.1:1"], **{option: "/nonexistent/file.pem"})
            self.assertEqual(e.exception.code, native.INVALID_TLS, option)
            self.assertIn("/nonexistent/file.pem", str(e.exception))


@unittest.skipUnless(SERVER, "CONCORDKV_TEST_SERVER is not set")
class ServerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.client = kv.Client([SERVER or ""])
        self.client.wait_ready(20.0)

    def tearDown(self) -> None:
        self.client.close()

    def test_routes_match_the_server(self) -> None:
        nodes = {n["nodeId"]: n for n in http("GET", "/api/topology/nodes")["nodes"]}
        for key in (b"user:1", b"user:2", b"order:77", b"a", b"zebra"):
            want = owner(key)
            got = self.client.route(key)
            self.assertEqual(got.shard_id, want["shardId"])
            self.assertEqual(got.epoch, want["epoch"])
            self.assertEqual(got.primary.node_id, want["primaryNode"])
            self.assertEqual(got.primary.address, nodes[want["primaryNode"]]["address"])
            self.assertEqual([r.node_id for r in got.replicas], want["replicaNodes"])
            self.assertIn(got.primary.health, native.HEALTH.values())
        snapshot = self.client.snapshot()
        self.assertEqual(len(snapshot["shardMap"]), len(http("GET", "/api/topology/shards")["shards"]))
        self.assertEqual(len(self.client.config_hash()), 16)

    def test_a_write_reaches_the_callback(self) -> None:
        seen: List[kv.Change] = []
        arrived = threading.Event()
        shard = self.client.route(b"zebra").shard_id

        def on_change(change: kv.Change) -> None:
            seen.append(change)
            if any(e.shard_id == shard for e in change.events):
                arrived.set()

        listener = self.client.on_change(on_change)
        status = http("GET", f"/api/topology/shards?shardId={shard}")["shard"]["status"]
        new_status = "active" if status == "readonly" else "readonly"
        version = http("PUT", f"/api/topology/shards/{shard}", {"status": new_status})["version"]
        self.assertTrue(arrived.wait(20.0), f"no change for {shard}; saw {seen}")
        self.client.remove_listener(listener)
        change = next(c for c in seen if any(e.shard_id == shard for e in c.events))
        self.assertEqual(change.version, version)
        self.assertFalse(change.reset)
        self.assertGreaterEqual(self.client.version, version)
        self.assertEqual(self.client.route(b"zebra").status, new_status)
        self.assertGreaterEqual(self.client.stats()["streams_opened"], 1)


if __name__ == "__main__":
    unittest.main()
