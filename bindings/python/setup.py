"""Build step of the concordkv-topology package: puts the shared library
libconcordkv_topology.so inside the package, so a wheel carries it.

The library comes from, in order:
1. $CONCORDKV_TOPOLOGY_PREBUILT_LIB: a library already built (e.g. the workspace's
   target/debug/libconcordkv_topology.so; nothing is compiled);
2. `cargo build --release -p concord-client` in the Cargo workspace this package
   sits in (two directories up), which needs Rust's cargo on PATH.

Everything else (name, version, package list) is in pyproject.toml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

LIB_NAME = "libconcordkv_topology.so"
PREBUILT_ENV = "CONCORDKV_TOPOLOGY_PREBUILT_LIB"
HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parents[1]


def cargo_build() -> Path:
    """Builds the library in release mode; its path."""
    if not (WORKSPACE / "Cargo.toml").exists():
        raise SystemExit(
            f"no Cargo workspace at {WORKSPACE}: build from the repository's "
            f"bindings/python, or set {PREBUILT_ENV} to a built {LIB_NAME}"
        )
    if shutil.which("cargo") is None:
        raise SystemExit(
            f"cargo is not on PATH: install Rust (rustup), or set {PREBUILT_ENV} "
            f"to a built {LIB_NAME}"
        )
    subprocess.run(
        ["cargo", "build", "--release", "-p", "concord-client"],
        cwd=WORKSPACE,
        check=True,
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=WORKSPACE,
        check=True,
        stdout=subprocess.PIPE,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / LIB_NAME


def library() -> Path:
    """The library to bundle: the prebuilt one when named, else a fresh release build."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    path = Path(prebuilt) if prebuilt else cargo_build()
    if not path.is_file():
        why = f"(from {PREBUILT_ENV})" if prebuilt else "after cargo build"
        raise SystemExit(f"{path} does not exist {why}")
    return path


class BuildWithLibrary(build_py):
    """build_py that also copies the shared library into the built package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "concordkv_topology" / LIB_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library(), target)


class BinaryDistribution(Distribution):
    """Marks the wheel platform-specific: it carries a native library."""

    def has_ext_modules(self) -> bool:
        return True


# Intermediate files (a copy of the library among them) go to a temporary directory,
# not into the source tree.
build_base = tempfile.mkdtemp(prefix="concordkv-topology-build-")
try:
    setup(
        cmdclass={"build_py": BuildWithLibrary},
        distclass=BinaryDistribution,
        options={"build": {"build_base": build_base}},
    )
finally:
    shutil.rmtree(build_base, ignore_errors=True)
