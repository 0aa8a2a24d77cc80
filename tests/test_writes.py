"""Writes never destroy inputs and honour the umask: `import-adapterhub` / `export-adapterhub` refuse
an output that is, contains or lies inside their input (through the real `madx` entry point), and
every folder and file madx writes atomically gets the modes mkdir and open would give it."""

from __future__ import annotations

import os
import shutil
import stat
import sys

import pytest

from madx.fileutil import atomic_directory, atomic_write_text, sha256_of_directory


def run_madx(capsys, monkeypatch, *argv: str) -> tuple[int, str]:
    from madx import cli

    monkeypatch.setattr(sys, "argv", ["madx", *argv])
    code = 0
    try:
        cli.main()
    except SystemExit as exited:
        code = exited.code
    return code, capsys.readouterr().err


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    before = os.umask(0o022)
    os.umask(before)
    yield set_mask
    os.umask(before)


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640),
                                                          (0o077, 0o700, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    with atomic_directory(tmp_path / "adapter") as staging:
        (staging / "weights.bin").write_bytes(b"x")
    atomic_write_text(tmp_path / "report.md", "# report\n")
    assert stat.S_IMODE((tmp_path / "adapter").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == file_mode


def test_export_and_import_refuse_to_overwrite_their_input(tiny_language_adapter, tmp_path, capsys, monkeypatch):
    adapter = tmp_path / "adapters" / "sw"
    shutil.copytree(tiny_language_adapter, adapter)
    before = sha256_of_directory(adapter)
    for out in (adapter, adapter / "hub", tmp_path / "adapters"):  # is, inside, contains
        code, err = run_madx(capsys, monkeypatch, "export-adapterhub", str(adapter), "--out", str(out))
        assert code == 1 and "writing it would destroy the input" in err, err
        assert sha256_of_directory(adapter) == before

    hub = tmp_path / "hub" / "sw"
    code, err = run_madx(capsys, monkeypatch, "export-adapterhub", str(adapter), "--out", str(hub))
    assert code == 0, err
    hub_before = sorted(p.name for p in hub.iterdir())
    assert "pytorch_adapter.bin" in hub_before
    code, err = run_madx(capsys, monkeypatch, "import-adapterhub", str(hub), "--out", str(hub))
    assert code == 1 and f"the output {hub} is the input {hub}" in err, err
    assert sorted(p.name for p in hub.iterdir()) == hub_before
