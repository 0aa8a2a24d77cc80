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
    from cli import main as cli

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


def modes(folder) -> dict[str, int]:
    """Permission bits of `folder` and of everything under it, by path relative to it."""
    return {str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
            for path in [folder, *sorted(folder.rglob("*"))]}


def modes_other_than(folder, folder_mode: int, file_mode: int) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes(folder).items()
            if mode != (folder_mode if (folder / name).is_dir() else file_mode)}


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640),
                                                          (0o077, 0o700, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, folder_mode, file_mode):
    import torch
    from safetensors.torch import save_file

    from madx.fileutil import atomic_write

    umask(mask)
    with atomic_directory(tmp_path / "adapter") as staging:
        (staging / "weights.bin").write_bytes(b"x")
        (staging / "sub").mkdir()
        # safetensors writes a temporary file of its own (0600 whatever the umask) and renames it
        save_file({"w": torch.zeros(2)}, str(staging / "sub" / "adapter.safetensors"))
    atomic_write_text(tmp_path / "report.md", "# report\n")
    atomic_write(tmp_path / "head.safetensors", lambda tmp: save_file({"w": torch.zeros(2)}, str(tmp)))
    assert modes_other_than(tmp_path / "adapter", folder_mode, file_mode) == {}
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "head.safetensors").stat().st_mode) == file_mode


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)], ids=["022", "027"])
def test_every_saved_model_adapter_and_head_is_readable_as_the_umask_allows(
        tmp_path, umask, mask, folder_mode, file_mode, make_tiny_model, tiny_base_dir, toy_corpus):
    """The files a run saves, each written by the function the pipeline calls: a built base model
    (transformers' save_pretrained), a trained language adapter (through its checkpoints), a task
    adapter with its head, and their AdapterHub export and re-import."""
    from language_adapters.base_model import build_base_model
    from language_adapters.settings import BaseModelSpec, LanguageAdapterTraining
    from language_adapters.train import train_language_adapter
    from madx import AdapterModel, save_adapter
    from madx.adapterhub import export_adapterhub, import_adapterhub

    umask(mask)
    built = build_base_model({"en": str(toy_corpus)}, tmp_path / "base", BaseModelSpec(
        vocab_size=200, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_length=32, steps=2,
        batch_size=4, warmup_steps=0, device="cpu"))
    train_language_adapter(tiny_base_dir, "en", toy_corpus, tmp_path / "adapters" / "en", LanguageAdapterTraining(
        steps=2, batch_size=4, warmup_steps=0, max_length=32, eval_every=2, log_every=1, checkpoint_every=1,
        min_corpus_tokens=0))
    am = AdapterModel(make_tiny_model("xlm-roberta", "token"))
    am.add_adapter("ner", "madx_task")
    am.new_token_head({0: "O", 1: "B-PER", 2: "I-PER"})
    save_adapter(am, "ner", tmp_path / "adapters" / "ner", with_head=True)
    import_adapterhub(export_adapterhub(tmp_path / "adapters" / "ner", tmp_path / "hub" / "ner"), tmp_path / "back")

    assert {"model.safetensors", "tokenizer.json"} <= set(modes(built.path))
    assert {"en/adapter.safetensors", "ner/adapter.safetensors", "ner/head.safetensors"} <= set(
        modes(tmp_path / "adapters"))
    for folder in ("base", "adapters", "hub", "back"):
        assert modes_other_than(tmp_path / folder, folder_mode, file_mode) == {}, folder


def test_everything_a_pipeline_run_writes_is_readable_as_the_umask_allows(trained_pipeline):
    """The tiny pipeline's whole output folder (adapters, MLflow store and artifacts, report): no file
    or folder is kept from the group or others beyond what the session's umask keeps from them."""
    from madx.fileutil import current_umask

    readable = 0o444 & ~current_umask()
    written = [trained_pipeline.out, *trained_pipeline.out.rglob("*")]
    assert any(path.name == "adapter.safetensors" for path in written)
    hidden = {}
    for path in written:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = readable | readable >> 2 if path.is_dir() else readable  # folders: read and search (x)
        if wanted & ~mode:
            hidden[str(path.relative_to(trained_pipeline.out))] = oct(mode)
    assert hidden == {}


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


@pytest.mark.parametrize("key, value, message", [
    ("reduction_factor", "two", "reduction_factor must be a finite number, got 'two'"),
    ("non_linearity", 5, "non_linearity must be one of"),
    ("after_ffn", "yes", "after_ffn must be true or false"),
    ("leave_out", [0, "x"], "leave_out must be a list of layer indices"),
])
def test_a_hand_edited_adapter_config_with_wrong_types_is_named(tiny_language_adapter, tmp_path, key, value, message):
    import json

    from madx.errors import AdapterLoadError
    from madx.adapter_files import check_adapter_folder

    folder = tmp_path / "adapter"
    shutil.copytree(tiny_language_adapter, folder)
    saved = json.loads((folder / "adapter_config.json").read_text())
    saved["config"][key] = value
    (folder / "adapter_config.json").write_text(json.dumps(saved))
    with pytest.raises(AdapterLoadError, match=rf"adapter_config.json: invalid adapter config: {message}"):
        check_adapter_folder(folder)


def test_an_adapter_of_nan_weights_is_refused_on_load(tiny_language_adapter, tiny_base_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForMaskedLM

    from madx import AdapterModel, load_adapter
    from madx.errors import AdapterLoadError

    folder = tmp_path / "adapter"
    shutil.copytree(tiny_language_adapter, folder)
    weights = load_file(str(folder / "adapter.safetensors"))
    save_file({key: torch.full_like(tensor, float("nan")) for key, tensor in weights.items()},
              str(folder / "adapter.safetensors"))
    am = AdapterModel(AutoModelForMaskedLM.from_pretrained(str(tiny_base_dir)))
    with pytest.raises(AdapterLoadError, match=r"adapter.safetensors: \d+ tensor\(s\) hold NaN or infinite values"):
        load_adapter(am, folder)


def test_an_adapterhub_head_saved_beside_another_heads_tensors_imports(tiny_task_adapter, tmp_path, caplog):
    """`adapters` 1.3.0 saves head `ner` by substring match, so `ner_lo`'s tensors land in `ner`'s
    model_head.safetensors too; its own loader takes the named head's keys, and so does ours."""
    import logging

    import torch
    from safetensors.torch import load_file, save_file

    from madx.adapterhub import export_adapterhub, import_adapterhub
    from madx.errors import AdapterLoadError

    hub = export_adapterhub(tiny_task_adapter, tmp_path / "hub")
    weights = load_file(str(hub / "model_head.safetensors"))
    name = next(iter(weights)).split(".")[1]
    extra = {**weights, **{key.replace(f"heads.{name}.", f"heads.{name}_lo."): torch.zeros_like(t)
                           for key, t in weights.items()}}
    save_file(extra, str(hub / "model_head.safetensors"))
    (hub / "pytorch_model_head.bin").unlink()
    with caplog.at_level(logging.WARNING, logger="madx"):
        out = import_adapterhub(hub, tmp_path / "madx")
    assert f"ignored 2 tensor(s) of other heads (heads.{name}_lo.1.bias" in caplog.text
    assert torch.equal(load_file(str(out / "head.safetensors"))["weight"], weights[f"heads.{name}.1.weight"])

    save_file({**weights, "classifier.weight": torch.zeros(1)}, str(hub / "model_head.safetensors"))
    with pytest.raises(AdapterLoadError, match="expected the keys"):
        import_adapterhub(hub, tmp_path / "madx-2")


def test_a_second_head_never_replaces_the_first_silently(tiny_task_adapter, tiny_base_dir):
    from transformers import AutoModelForTokenClassification

    from madx import AdapterModel, load_adapter
    from madx.errors import ConfigError

    am = AdapterModel(AutoModelForTokenClassification.from_pretrained(str(tiny_base_dir)))
    load_adapter(am, tiny_task_adapter, name="ner")
    head = am.token_head.weight.detach().clone()
    with pytest.raises(ConfigError, match="token head is task adapter 'ner''s; loading 'ner2' with its head"):
        load_adapter(am, tiny_task_adapter, name="ner2")
    assert "ner2" not in am.configs and am.head_adapter == "ner"
    load_adapter(am, tiny_task_adapter, name="ner2", with_head=False)  # the adapter alone is fine
    assert load_adapter(am, tiny_task_adapter, name="ner3", overwrite=True) == "ner3" and am.head_adapter == "ner3"
    assert am.token_head.weight.shape == head.shape


def test_a_full_disk_is_one_line_naming_the_folder_and_the_old_content_stays(tmp_path):
    import errno

    from madx.errors import MadxError

    target = tmp_path / "adapters" / "sw"
    with atomic_directory(target) as staging:
        (staging / "old.bin").write_bytes(b"old")

    def fill_up(staging):
        (staging / "part.bin").write_bytes(b"x" * 2**20)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(MadxError, match=rf"no space left on the device of {tmp_path / 'adapters'} while writing sw: "
                                        r"it had written 1.0 MiB"):
        with atomic_directory(target) as staging:
            fill_up(staging)
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    assert [p.name for p in target.parent.iterdir()] == ["sw"]  # no staging folder left behind

    def safetensors_style(tmp):  # the safetensors error carries the OS message in its text
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                           "\"No space left on device\" })")

    with pytest.raises(MadxError, match="no space left on the device of .* while writing report.md"):
        from madx.fileutil import atomic_write
        atomic_write(tmp_path / "report.md", safetensors_style)
    assert not list(tmp_path.glob(".report.md*"))
