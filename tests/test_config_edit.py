"""`madx add-language --save`: a language added to the user's pipeline YAML (flows/config_edit.py).

The file keeps every byte it had (comments, blank lines, quoting, key order); the new lines go at the
end of `languages:`, in the style of the entries above them; the result loads as a pipeline config.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.config import load_pipeline_config
from flows.config_edit import add_language_to_config, plan_language
from madx.errors import ConfigError

FLOW_STYLE = """\
# A pipeline for the tests of flows/config_edit.py.
name: edit-me   # the MLflow experiment
output_dir: out

base_model:
  name_or_path: xlm-roberta-base

source_language: en
languages:
  # the source language first
  en: {corpus: "udhr:en"}     # English
  sw: {corpus: texts/sw.txt, schedule: "0 3 * * 0"}
  # yo: {corpus: udhr:yo}   (later)

# -- tasks -----------------------------------------------------------
tasks: {}
"""

BLOCK_STYLE = """\
name: edit-me
output_dir: out
base_model:
    name_or_path: xlm-roberta-base
source_language: en
languages:
    en:
        corpus: udhr:en
    sw:
        corpus:
          - texts/sw.txt
          - udhr:sw
        # sw: weekly, once it is served
# tasks follow
tasks: {}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """configs/pipeline.yaml (with comments) and the text files it and the tests name."""
    (tmp_path / "configs" / "texts").mkdir(parents=True)
    (tmp_path / "configs" / "texts" / "sw.txt").write_text("Kila mtu ana haki.\n", encoding="utf-8")
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "qu.txt").write_text("Llapa runakunam kay pachaman paqarimunku.\n", encoding="utf-8")
    (tmp_path / "configs" / "pipeline.yaml").write_text(FLOW_STYLE, encoding="utf-8")
    return tmp_path


def _without(text: str, lines: str) -> str:
    assert text.count(lines) == 1, text
    return text.replace(lines, "")


def test_adds_a_language_keeping_every_other_byte(project, monkeypatch):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    added = add_language_to_config(config, "qu", "udhr:qu", schedule="0 4 * * 1")

    assert added == '  qu: {corpus: udhr:qu, schedule: "0 4 * * 1"}\n'  # a cron quoted, as in the shipped configs
    text = config.read_text(encoding="utf-8")
    assert _without(text, added) == FLOW_STYLE
    # after the last entry and the commented-out one, before the heading of the next section
    assert text.index(added) + len(added) == text.index("\n# -- tasks")
    assert text.index(added) > text.index("# yo:")
    loaded = load_pipeline_config(config)
    assert loaded.languages["qu"].corpus == "udhr:qu" and loaded.languages["qu"].schedule == "0 4 * * 1"
    assert sorted(loaded.languages) == ["en", "qu", "sw"]


def test_block_style_entries_get_a_block_entry_indented_like_them(project, monkeypatch):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    config.write_text(BLOCK_STYLE, encoding="utf-8")
    added = add_language_to_config(config, "qu", "udhr:qu")

    assert added == "    qu:\n        corpus: udhr:qu\n"
    text = config.read_text(encoding="utf-8")
    assert _without(text, added) == BLOCK_STYLE
    assert text.index(added) + len(added) == text.index("# tasks follow")  # the sw comment stays with sw
    assert load_pipeline_config(config).languages["qu"].corpus == "udhr:qu"


def test_a_relative_path_typed_here_is_written_relative_to_the_yaml(project, monkeypatch):
    monkeypatch.chdir(project / "corpora")  # the user runs the command from another folder
    config = Path("..") / "configs" / "pipeline.yaml"
    added = add_language_to_config(config, "qu", "qu.txt")

    assert added == "  qu: {corpus: ../corpora/qu.txt}\n"
    assert load_pipeline_config(config).corpus("qu").location == str(project / "corpora" / "qu.txt")
    # typed absolute: written as typed
    add_language_to_config(config, "ay", str(project / "corpora" / "qu.txt"))
    absolute = project / "corpora" / "qu.txt"
    assert f"  ay: {{corpus: {absolute}}}\n" in (project / "configs" / "pipeline.yaml").read_text(encoding="utf-8")


def test_the_same_language_again_changes_nothing(project, monkeypatch):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    add_language_to_config(config, "qu", "corpora/qu.txt")
    before = config.read_bytes()
    # the same file, typed from here or as the YAML says it: no second entry, no error
    assert add_language_to_config(config, "qu", "corpora/qu.txt") == "  qu: {corpus: ../corpora/qu.txt}\n"
    assert plan_language(config, "sw", "configs/texts/sw.txt").new_text is None
    assert config.read_bytes() == before


@pytest.mark.parametrize(("code", "corpus", "schedule", "message"), [
    ("sw", "udhr:sw", None, r"languages\.sw is there already, with corpus"),
    ("sw", "configs/texts/sw.txt", "0 5 * * *", r"languages\.sw is there already, with schedule '0 3 \* \* 0'"),
    ("qu", "udhr:qu", "every sunday", r"not a 5-field cron expression"),
    ("q u", "udhr:qu", None, r"language code 'q u'"),
])
def test_refusals_name_the_file_and_write_nothing(project, monkeypatch, code, corpus, schedule, message):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    with pytest.raises(ConfigError, match=message) as raised:
        add_language_to_config(config, code, corpus, schedule)
    if "already" in message:
        assert str(config) in str(raised.value)
    assert config.read_text(encoding="utf-8") == FLOW_STYLE


@pytest.mark.parametrize("text", [
    "name: x\noutput_dir: out\n",  # no languages at all
    "name: x\nlanguages:\n  - en\n",  # a list, not a mapping
    "- just\n- a list\n",
])
def test_a_yaml_without_a_languages_mapping_is_refused(tmp_path, text):
    config = tmp_path / "pipeline.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{config} has no `languages` mapping"):
        add_language_to_config(config, "qu", "udhr:qu")
    assert config.read_text(encoding="utf-8") == text


def test_an_edit_that_makes_the_config_invalid_is_undone(project, monkeypatch):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    config.chmod(0o640)
    with pytest.raises(ConfigError, match=r"invalid, so it is left as it was: .*missing file.*languages\.qu\.corpus"):
        add_language_to_config(config, "qu", "no-such-file.txt")
    assert config.read_text(encoding="utf-8") == FLOW_STYLE
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert [p.name for p in config.parent.iterdir() if p.is_file()] == ["pipeline.yaml"]  # no temporary left


def test_a_config_that_cannot_be_written_is_refused_by_name(project, monkeypatch):
    monkeypatch.chdir(project)
    config = project / "configs" / "pipeline.yaml"
    config.chmod(0o444)  # read-only (refused for root too, who could write it)
    with pytest.raises(ConfigError, match=rf"cannot write {config}: the file is read-only"):
        add_language_to_config(config, "qu", "udhr:qu")
    config.chmod(0o644)

    def denied(path, write):  # what a folder the user may not write to does
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("flows.config_edit.atomic_write", denied)
    with pytest.raises(ConfigError, match=rf"cannot write {config}: Permission denied"):
        add_language_to_config(config, "qu", "udhr:qu")
    assert config.read_text(encoding="utf-8") == FLOW_STYLE


def test_after_training_a_config_that_cannot_be_written_gets_a_warning_and_the_lines(project, monkeypatch, capsys):
    """The adapter is trained by then: the command ends well, and says what to add by hand."""
    from cli.pipeline import keep_language

    monkeypatch.chdir(project)
    config = Path("configs/pipeline.yaml")
    config.chmod(0o444)
    keep_language(config, "qu", "corpora/qu.txt", "0 3 * * 0", save=True)
    out = capsys.readouterr().out
    assert f"warning: qu is trained but not saved in {config}: cannot write {config}: the file is read-only" in out
    assert out.endswith(f"add these lines under `languages:` in {config}:\n"
                        '  qu: {corpus: ../corpora/qu.txt, schedule: "0 3 * * 0"}\n')
    assert config.read_text(encoding="utf-8") == FLOW_STYLE

    config.chmod(0o644)
    keep_language(config, "qu", "corpora/qu.txt", None, save=False)  # without --save: the lines, and --save
    out = capsys.readouterr().out
    assert "--save" in out and out.endswith("  qu: {corpus: ../corpora/qu.txt}\n")
    assert config.read_text(encoding="utf-8") == FLOW_STYLE
    keep_language(config, "qu", "corpora/qu.txt", None, save=True)
    assert "saved in configs/pipeline.yaml" in capsys.readouterr().out
    assert load_pipeline_config(config).corpus("qu").location == str(project / "corpora" / "qu.txt")


def test_mode_links_line_endings_and_yaml_1_1_words_are_kept(project, monkeypatch):
    monkeypatch.chdir(project)
    real = project / "configs" / "pipeline.yaml"
    real.write_bytes(FLOW_STYLE.replace("\n", "\r\n").encode())
    real.chmod(0o604)
    link = project / "link.yaml"
    link.symlink_to(real)
    added = add_language_to_config(link, "no", "udhr:no")  # Norwegian: `no` is false in YAML 1.1

    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o604
    assert added == '  "no": {corpus: udhr:no}\n'
    assert real.read_bytes() == FLOW_STYLE.replace("\n", "\r\n").replace(
        "\r\n\r\n# -- tasks", '\r\n  "no": {corpus: udhr:no}\r\n\r\n# -- tasks').encode()
    assert load_pipeline_config(link).languages["no"].corpus == "udhr:no"


# -- the command ---------------------------------------------------------------------------------
def test_add_language_refuses_a_bad_schedule_before_any_work(project, monkeypatch):
    import cli.pipeline
    from cli.main import app

    def no_work():
        raise AssertionError("a flow was started for a bad --schedule")

    monkeypatch.setattr(cli.pipeline, "flow_command", no_work)
    config = project / "configs" / "pipeline.yaml"
    result = CliRunner().invoke(app, ["add-language", "qu", "--corpus", "udhr:qu", "--config", str(config),
                                      "--save", "--schedule", "every sunday"])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception) == ("--schedule: schedule 'every sunday' is not a 5-field cron expression "
                                     "like '0 3 * * 0'")
    assert config.read_text(encoding="utf-8") == FLOW_STYLE


def test_add_language_save_writes_the_language_once_the_flow_has_run(project, monkeypatch):
    """The command's wiring, with the flow (which trains models) replaced: the flow gets the corpus as
    an absolute path (what the saved config will name); the config gets the entry after it returns."""
    import cli.pipeline
    from cli.main import app

    calls = []

    def call_flow(flow, config, **parameters):
        calls.append(parameters)
        assert "qu" not in load_pipeline_config(config).languages  # saved only after a success
        return {"adapter": "adapters/language/qu", "rows": []}

    monkeypatch.setattr(cli.pipeline, "flow_command", lambda: call_flow)
    monkeypatch.setattr(cli.pipeline, "print_summary", lambda *args: None)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["add-language", "qu", "--corpus", "corpora/qu.txt", "--config",
                                      "configs/pipeline.yaml", "--save", "--schedule", "0 4 * * 1"])
    assert result.exit_code == 0, result.output
    assert calls[0]["corpus"] == str(project / "corpora" / "qu.txt")
    assert 'qu: {corpus: ../corpora/qu.txt, schedule: "0 4 * * 1"}' in result.output
    loaded = load_pipeline_config(project / "configs" / "pipeline.yaml")
    assert loaded.corpus("qu").location == calls[0]["corpus"] and loaded.languages["qu"].schedule == "0 4 * * 1"
