"""Check, in a real headless browser, that the MLflow UI works as the comparison tool for a
finished pipeline output folder; write screenshots of what it shows.

    .venv/bin/python scripts/mlflow_ui_check.py --output-dir runs/demo            # a finished pipeline
    .venv/bin/python scripts/mlflow_ui_check.py --demo-store                      # a small fake store
    make ui-check [OUTPUT=runs/demo]                                              # the same, set up first

What it does: starts `mlflow server` (this environment's) on the folder's `mlflow.db`, opens the
experiment in headless Chromium and checks, failing with one line and exit status 1 otherwise:
  1. the experiment's runs table opens in the training ("Model training") view, not the GenAI one,
     and its nested runs expand (pipeline -> evaluation stage -> one run per evaluation cell);
  2. "Group by" the evaluation runs' param `setup` (--group-by) shows one group row per setup
     (madx, en-la, no-la) carrying the average of the score metric, equal to the mean computed
     from the store;
  3. the chart view plots that score per setup.
Screenshots go to --screens (default runs/ui-check/, git-ignored):
  00-default-landing.png  where a fresh browser lands on the plain experiment link (information)
  01-runs-table.png       the runs table, nested runs expanded, score and params as columns
  02-grouped.png          the evaluation runs grouped by setup, an average per group
  03-chart-<metric>.png   the chart view: the score per setup (grouped averages)

Which runs and values (from the store, before the browser opens): the evaluation runs are those
tagged `madx.kind = evaluation` (--filter); each carries params `task`, `language`, `setup`, `seed`
and `metric` (the score's name, `word_accuracy` or `entity_f1`), and logs the score under that
name. --group-by tag:madx.setup groups by the tag instead (older stores have no params);
--metric NAME picks the score when the runs carry no `metric` param.

Why the URL says `workflowType=machine_learning`: MLflow 3.17's UI chooses GenAI vs training with
a global switch (the sidebar's "GenAI | Model training"), kept in the browser's localStorage
(`mlflow.workflowType`, GenAI for a new browser) and overridden by that URL parameter; the
experiment tag `mlflow.experimentKind` does not choose the view in this version.

Setup (offline; Playwright drives the system Chromium, its own browser download is not needed):
    apt-get install -y chromium                       # Debian's Chromium, /usr/bin/chromium
    .venv/bin/pip install -e '.[ui-check]'            # Playwright (Python package + its driver)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCREENS = ROOT / "runs" / "ui-check"
DEFAULT_FILTER = "tags.`madx.kind` = 'evaluation'"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
EXPECTED_SETUPS = ("madx", "en-la", "no-la")


# A new browser opens the "MLflow Assistant" chat panel over a third of the page, once it has
# loaded (too late to close reliably): say it was opened and closed already (this browser only).
QUIET_PANELS = """
if (localStorage.getItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1') === null) {
  localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
  localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
}
"""


class CheckFailed(Exception):
    """What the UI (or the store behind it) does not show; said in one line."""


def log(message: str) -> None:
    print(f"ui-check: {message}", flush=True)


# -- what the store says the UI should show ------------------------------------------------------
@dataclass(frozen=True)
class GroupKey:
    """What to group by: a param (`setup`) or a tag (`tag:madx.setup`)."""

    kind: str  # "param" or "tag"
    name: str

    @classmethod
    def parse(cls, text: str) -> GroupKey:
        kind, _, name = text.rpartition(":")
        kind = {"": "param", "param": "param", "params": "param", "tag": "tag", "tags": "tag"}.get(kind)
        if kind is None or not name:
            raise argparse.ArgumentTypeError(f"--group-by {text!r}: give a param name (setup) or tag:NAME (tag:madx.setup)")
        return cls(kind, name)

    def value(self, run) -> str | None:
        return (run.data.params if self.kind == "param" else run.data.tags).get(self.name)

    def __str__(self) -> str:
        return f"{self.kind} `{self.name}`"


@dataclass
class Expected:
    experiment_id: str
    experiment_name: str
    kind_tag: str | None  # the experiment's mlflow.experimentKind, if any
    metrics: list[str]
    means: dict[str, dict[str, float]]  # metric -> group value -> mean over the group's runs
    evaluation_run_ids: list[str] = field(default_factory=list)


def read_store(tracking_uri: str, experiment: str | None, group_by: GroupKey, metrics: list[str],
               search_filter: str, expect_groups: list[str]) -> Expected:
    """The experiment, its evaluation runs and the per-group means the UI must show."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment) if experiment else _only_experiment(client)
    if found is None:
        raise CheckFailed(f"no experiment named {experiment!r} in {tracking_uri}")
    runs = client.search_runs([found.experiment_id], search_filter, max_results=1000)
    if not runs:
        raise CheckFailed(f"experiment {found.name!r} has no run matching {search_filter!r}: is the pipeline finished?")
    missing = [run.info.run_name for run in runs if group_by.value(run) is None]
    if missing:
        raise CheckFailed(f"{len(missing)} of {len(runs)} evaluation runs lack the {group_by} to group by "
                          f"(e.g. {missing[0]!r}); the pipeline must log it (or try --group-by tag:madx.setup)")
    if not metrics:  # the score's name, as the runs declare it
        metrics = sorted({run.data.params["metric"] for run in runs if "metric" in run.data.params})
    if not metrics:
        raise CheckFailed(f"the {len(runs)} evaluation runs carry no param `metric` naming their score "
                          "(word_accuracy, entity_f1): pass --metric NAME")
    means: dict[str, dict[str, float]] = {}
    for metric in metrics:
        values: dict[str, list[float]] = defaultdict(list)
        for run in runs:
            if metric in run.data.metrics:
                values[group_by.value(run)].append(run.data.metrics[metric])
        if not values:
            raise CheckFailed(f"no evaluation run logged the metric {metric!r}")
        means[metric] = {group: sum(v) / len(v) for group, v in sorted(values.items())}
    absent = [group for group in expect_groups if not any(group in m for m in means.values())]
    if absent:
        raise CheckFailed(f"the store has no evaluation run with {group_by} = {', '.join(absent)} "
                          f"(found: {', '.join(sorted({g for m in means.values() for g in m}))})")
    return Expected(found.experiment_id, found.name, found.tags.get("mlflow.experimentKind"), metrics, means,
                    [run.info.run_id for run in runs])


def _only_experiment(client):
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    if len(experiments) != 1:
        names = ", ".join(repr(e.name) for e in experiments) or "none"
        raise CheckFailed(f"pass --experiment NAME (the pipeline YAML's `name:`); this store holds: {names}")
    return experiments[0]


# -- a demo store: the pipeline's run tree with fake but plausible scores -------------------------
def build_demo_store(folder: Path) -> str:
    """An MLflow store like a finished pipeline's: a parent run (madx.kind=pipeline) holding a
    language adapter run per language, a task adapter run and an evaluation stage whose nested runs
    are 2 languages x 3 setups x 2 seeds, each with params task/language/setup/seed/metric and the
    score under `word_accuracy` (plus today's `f1` and `accuracy`). Returns the experiment name."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "mlflow.db"
    _copy_empty_store(database)
    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    name = "madx-ui-demo"
    experiment_id = client.create_experiment(name, artifact_location=(folder / "mlartifacts").resolve().as_uri())
    rng = random.Random(0)
    now = int(time.time() * 1000)

    def run(run_name: str, kind: str, parent: str | None = None, **tags: str) -> str:
        all_tags = {"madx.kind": kind, "madx.base_model": "multilingual-e5-small", **tags}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        return client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id

    pipeline = run(f"pipeline {name}", "pipeline")
    for language in ("en", "de", "es"):
        adapter = run(f"language adapter {language}", "language_adapter", pipeline, **{"madx.language": language})
        client.log_batch(adapter, metrics=[Metric("perplexity", rng.uniform(900, 1400), now, 0)])
        client.set_terminated(adapter)
    task_adapter = run("task adapter pos", "task_adapter", pipeline, **{"madx.task": "pos", "madx.language": "en"})
    client.log_batch(task_adapter, metrics=[Metric("dev_f1", 0.915, now, 0)])
    client.set_terminated(task_adapter)
    stage = run("evaluation pos", "evaluation_stage", pipeline, **{"madx.task": "pos"})
    level = {"de": 0.74, "es": 0.88}  # word accuracy around the README's measured numbers
    shift = {"madx": 0.0, "en-la": 0.02, "no-la": -0.04}
    for language in ("de", "es"):
        for setup in EXPECTED_SETUPS:
            for seed in (0, 1):
                tags = {"madx.language": language, "madx.setup": setup, "madx.task": "pos", "madx.scheme": "plain"}
                cell = run(f"pos {language} {setup} seed {seed}", "evaluation", stage, **tags)
                score = level[language] + shift[setup] + rng.uniform(-0.02, 0.02)
                params = {"task": "pos", "language": language, "setup": setup, "seed": str(seed), "metric": "word_accuracy"}
                client.log_batch(cell, params=[Param(k, v) for k, v in params.items()],
                                 metrics=[Metric(key, score, now, 0) for key in ("word_accuracy", "f1", "accuracy")])
                client.set_terminated(cell)
    client.set_terminated(stage)
    client.set_terminated(pipeline)
    return name


def _copy_empty_store(database: Path) -> None:
    """Start from the empty store `madx prepare` caches, if there is one: MLflow would otherwise
    create the schema by running every migration (several seconds on 2 cores). Same path as
    tasks.tracking_store.store_template(), not imported: that module pulls in the adapter core (seconds)."""
    import mlflow

    cache = os.environ.get("MADX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "madx"
    template = Path(cache) / f"mlflow-{mlflow.__version__}-empty-store.db"
    if template.is_file():
        with contextlib.suppress(OSError):  # only a shortcut: without it MLflow makes the store itself
            shutil.copyfile(template, database)


# -- the MLflow server ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(output_dir: Path, port: int, log_file: Path, timeout: float) -> Iterator[str]:
    """`mlflow server` on the folder's store, one worker, no job runner; yields its base URL once
    /health answers, stops its whole process group at the end."""
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow) if mlflow.is_file() else sys.executable, *([] if mlflow.is_file() else ["-m", "mlflow"]),
               "server", "--backend-store-uri", f"sqlite:///{(output_dir / 'mlflow.db').resolve()}",
               "--default-artifact-root", (output_dir / "mlartifacts").resolve().as_uri(), "--no-serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "w") as output, tempfile.TemporaryDirectory(prefix="mlflow-ui-check-") as scratch:
        process = subprocess.Popen(command, env=env, cwd=scratch, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            _wait_healthy(process, f"{url}/health", timeout, log_file)
            yield url
        finally:
            _stop(process)


def _wait_healthy(process: subprocess.Popen, health: str, timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailed(f"mlflow server exited with code {process.returncode}; its output: {log_file}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.5)
    raise CheckFailed(f"mlflow server did not answer {health} within {timeout:.0f} s; its output: {log_file}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn and its worker), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
            return


# -- the browser ---------------------------------------------------------------------------------
def launch_browser(playwright, chromium: str):
    # Playwright's own browser build is not needed (nor reachable offline): it drives the system one.
    return playwright.chromium.launch(executable_path=chromium, headless=True)


class UiCheck:
    """The checks, page by page. Elements are found by ARIA role and visible text, the way a person
    reads the page; two things only have no accessible name: the expand button of a parent run
    (found as the only button in a run-name cell) and the table/chart switch (set via the URL)."""

    def __init__(self, page, base_url: str, expected: Expected, group_by: GroupKey, search_filter: str,
                 screens: Path, timeout_ms: int):
        self.page = page
        self.base = base_url
        self.expected = expected
        self.group_by = group_by
        self.search_filter = search_filter
        self.screens = screens
        page.set_default_timeout(timeout_ms)

    def runs_url(self, **query: str) -> str:
        params = {"workflowType": "machine_learning", **query}
        return f"{self.base}/#/experiments/{self.expected.experiment_id}/runs?{urllib.parse.urlencode(params)}"

    def shot(self, name: str) -> Path:
        path = self.screens / name
        self.page.screenshot(path=str(path))
        return path

    # 0: information only, not a failure: where the plain experiment link lands in a new browser
    def default_landing(self) -> str:
        page = self.page
        page.goto(f"{self.base}/#/experiments/{self.expected.experiment_id}")
        page.wait_for_url(re.compile(r"workflowType="))  # the route redirects once the experiment has loaded
        page.wait_for_timeout(2000)  # let the page it chose draw
        self.shot("00-default-landing.png")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url.split("#", 1)[-1]).query)
        return f"{query.get('workflowType', ['?'])[0]} view ({page.url.split('#', 1)[-1]})"

    # 1: the runs table in the training view, nested runs expanded
    def runs_table(self) -> int:
        page = self.page
        page.goto(self.runs_url())
        self._require(page.get_by_role("heading", name="Runs", exact=True), "no 'Runs' heading: not the training view")
        self._require(page.get_by_role("button", name="Group by"), "no 'Group by' control: not the training runs table")
        if page.get_by_role("link", name="Sessions", exact=True).count():
            raise CheckFailed("the GenAI navigation (Sessions) is shown beside the runs table")
        self._prepare_table()
        self._expand_parents()
        links = set(page.get_by_role("grid").get_by_role("link").evaluate_all(
            "links => links.map(link => link.getAttribute('href'))"))
        visible = [run_id for run_id in self.expected.evaluation_run_ids if any(run_id in (h or "") for h in links)]
        if not visible:
            raise CheckFailed("the nested evaluation runs do not appear under their parent runs after expanding")
        self._widen("Run Name", 120)
        for metric in self.expected.metrics:
            self._widen(metric, 110)
        self.shot("01-runs-table.png")
        return len(visible)

    # 2: grouped by setup, an average of the score per group
    def grouped(self) -> dict[str, dict[str, float]]:
        page = self.page
        page.goto(self.runs_url(searchFilter=self.search_filter))  # same page, the filter in the URL
        self._prepare_table()
        page.get_by_role("button", name="Group by").click()
        menu = page.get_by_role("menu", name="Group by")
        items = menu.get_by_role("menuitemcheckbox", name=self.group_by.name, exact=True)
        if not items.count():
            raise CheckFailed(f"'Group by' offers no {self.group_by}: the runs shown do not carry it")
        # The menu lists tags first, then params: a tag and a param of the same name differ by position.
        (items.first if self.group_by.kind == "tag" else items.last).click()
        page.keyboard.press("Escape")
        self._require(page.get_by_role("button", name=re.compile(rf"Group by: {re.escape(self.group_by.name)}")),
                      f"the 'Group by' control does not say {self.group_by.name}")
        for metric in self.expected.metrics:
            self._widen(metric, 110)
        shown = self._group_rows()
        self.shot("02-grouped.png")
        self._compare(shown)
        return shown

    # 3: the chart view, grouped values: one bar per group
    def charts(self) -> list[str]:
        page = self.page
        page.goto(self.runs_url(searchFilter=self.search_filter, compareRunsMode="CHART"))
        search = page.get_by_role("searchbox", name="Search metric charts")
        search.wait_for()
        names = []
        for metric in self.expected.metrics:
            search.fill(metric)
            heading = page.get_by_role("heading", name=metric, exact=True, level=4)
            self._require(heading, f"the chart view has no chart of {metric}")
            groups = list(self.expected.means[metric])
            card = page.locator("div").filter(has=heading)
            for group in groups:
                card = card.filter(has_text=group)
            card = card.last  # the innermost box holding the title and every group's legend entry
            self._require(card, f"the {metric} chart does not name every group ({', '.join(groups)})")
            page.wait_for_timeout(500)  # the bars animate in
            numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", card.inner_text())]
            for group, mean in self.expected.means[metric].items():
                if not any(math.isclose(n, mean, abs_tol=0.006) for n in numbers):
                    raise CheckFailed(f"the {metric} chart shows no bar label near {group}'s mean {mean:.3f} "
                                      f"(labels: {numbers})")
            names.append(self.shot(f"03-chart-{_file_safe(metric)}.png").name)
        return names

    # -- helpers ---------------------------------------------------------------------------------
    def _prepare_table(self) -> None:
        """Wait for the runs; show the score and the grouping params as columns, hide the wide
        attribute columns (the grid renders only the columns that fit, so a far-right one is not
        there to read)."""
        self.page.get_by_text(re.compile(r"matching runs?$")).wait_for()
        self.page.get_by_role("grid").get_by_role("link").first.wait_for()
        self._close_assistant()
        params = [self.group_by.name] if self.group_by.kind == "param" else []
        self._set_columns(show=[*self.expected.metrics, *params, "language", "seed"], hide=["Dataset", "Source", "Models"])

    @staticmethod
    def _require(locator, message: str) -> None:
        try:
            locator.first.wait_for()
        except Exception as error:  # playwright's TimeoutError
            raise CheckFailed(message) from error

    def _close_assistant(self) -> None:
        """The "MLflow Assistant" side panel (kept shut by QUIET_PANELS) if it opened anyway."""
        close = self.page.get_by_role("button", name="New Chat")
        if close.count():
            with contextlib.suppress(Exception):
                self.page.get_by_role("button", name="Close", exact=True).click(timeout=3000)

    def _set_columns(self, show: list[str], hide: list[str]) -> None:
        """Tick in the "Columns" picker each name in `show` the table lacks, untick each in `hide`
        it has (a click toggles: the header tells the state)."""
        page = self.page
        grid = page.get_by_role("grid")

        def shown(name: str) -> bool:
            return grid.get_by_role("columnheader", name=name, exact=True).count() > 0

        toggle = [name for name in dict.fromkeys(show) if not shown(name)] + [name for name in hide if shown(name)]
        if toggle:
            page.get_by_role("button", name="Columns", exact=True).click()
            picker = page.get_by_role("dialog")
            for name in toggle:
                picker.get_by_role("textbox", name="Search columns").fill(name)
                # The picker bolds the matched part ("dev_<b>f1</b>"): take a label that is the whole name.
                option = picker.locator("span").filter(has_text=re.compile(rf"^{re.escape(name)}$"))
                if option.count():
                    option.last.click()
            page.keyboard.press("Escape")
        for name in self.expected.metrics:
            self._require(grid.get_by_role("columnheader", name=name, exact=True),
                          f"the runs table cannot show the metric {name} as a column")

    def _expand_parents(self) -> None:
        """Click the expand button of every parent run (a run-name cell with a button), each once,
        deepest last: pipeline -> evaluation stage -> cells."""
        page = self.page
        grid = page.get_by_role("grid")
        done: set[str] = set()
        for _ in range(200):
            cells = grid.get_by_role("gridcell").filter(has=page.get_by_role("button")).filter(has=page.get_by_role("link"))
            todo = [cell for cell in cells.all() if cell.get_by_role("link").first.get_attribute("href") not in done]
            if not todo:
                return
            done.add(todo[0].get_by_role("link").first.get_attribute("href"))
            before = grid.get_by_role("link").count()
            todo[0].get_by_role("button").first.click()
            with contextlib.suppress(Exception):
                page.wait_for_function(f"n => document.querySelectorAll('[role=grid] a').length > {before}", timeout=3000)

    def _widen(self, header: str, pixels: int) -> None:
        """Drag a column header's right edge (cosmetic: long names and values get cut otherwise)."""
        with contextlib.suppress(Exception):
            box = self.page.get_by_role("columnheader", name=header, exact=True).last.bounding_box(timeout=2000)
            x, y = box["x"] + box["width"] - 2, box["y"] + box["height"] / 2
            self.page.mouse.move(x, y)
            self.page.mouse.down()
            self.page.mouse.move(x + pixels, y, steps=5)
            self.page.mouse.up()
        self.page.mouse.move(1, 1)  # away: a header left hovered shows a tooltip in the screenshot

    def _group_rows(self) -> dict[str, dict[str, float]]:
        """Each group row's name and aggregated values, per metric column. The grid draws a row in
        two parts (pinned run-name side, scrolling side) that share its aria-rowindex."""
        page = self.page
        page.get_by_text(re.compile(r"^Group: ")).first.wait_for()
        header_index = {}
        for metric in self.expected.metrics:  # the header's outer element carries the column's index
            headers = page.get_by_role("columnheader", name=metric, exact=True)
            indexes = [i for i in headers.evaluate_all("hs => hs.map(h => h.getAttribute('aria-colindex'))") if i]
            if not indexes:
                raise CheckFailed(f"the grouped table shows no {metric} column")
            header_index[metric] = indexes[0]
        parts: dict[str, list] = defaultdict(list)
        for row in page.get_by_role("row").all():
            index = row.get_attribute("aria-rowindex")
            if index:
                parts[index].append(row)
        shown: dict[str, dict[str, float]] = defaultdict(dict)
        for rows in parts.values():
            text = "\n".join(row.inner_text() for row in rows)
            name = re.search(r"^Group: (.+)$", text, re.M)
            if not name:
                continue
            for metric, column in header_index.items():
                cell = [c for row in rows for c in row.get_by_role("gridcell").all()
                        if c.get_attribute("aria-colindex") == column]
                value = re.fullmatch(r"\s*(-?[\d.]+(?:e-?\d+)?) \(average\)\s*", cell[0].inner_text()) if cell else None
                if value:
                    shown[metric][name.group(1).strip()] = float(value.group(1))
        return shown

    def _compare(self, shown: dict[str, dict[str, float]]) -> None:
        for metric, means in self.expected.means.items():
            for group, mean in means.items():
                if group not in shown.get(metric, {}):
                    raise CheckFailed(f"no group row '{group}' with an average {metric} in the grouped table "
                                      f"(rows with one: {sorted(shown.get(metric, {})) or 'none'})")
                if not math.isclose(shown[metric][group], mean, rel_tol=1e-6, abs_tol=1e-9):
                    raise CheckFailed(f"group '{group}' shows average {metric} {shown[metric][group]}, "
                                      f"the store's runs average {mean}")


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# -- command line ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index("Setup (offline"):] + "\nExit status: 0 all checks passed; 1 a check failed "
               "(one line says which); 2 bad arguments or setup missing.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--output-dir", type=Path, help="a finished pipeline output folder (holds mlflow.db, mlartifacts/)")
    source.add_argument("--demo-store", action="store_true",
                        help="check a small fake store built in a temporary folder (no trained pipeline needed)")
    parser.add_argument("--experiment", help="experiment name (the pipeline YAML's `name:`); default: the store's only one")
    parser.add_argument("--screens", type=Path, default=DEFAULT_SCREENS, help="folder for the PNGs (default: runs/ui-check/)")
    parser.add_argument("--port", type=int, default=0, help="port of the MLflow server (default: a free one)")
    parser.add_argument("--group-by", type=GroupKey.parse, default=GroupKey("param", "setup"),
                        help="param to group the evaluation runs by, or tag:NAME (default: setup)")
    parser.add_argument("--metric", action="append", default=[],
                        help="score metric to check (repeatable; default: the runs' param `metric`)")
    parser.add_argument("--expect-groups", default=",".join(EXPECTED_SETUPS),
                        help="comma-separated groups that must exist (default: madx,en-la,no-la; '' for any)")
    parser.add_argument("--filter", default=DEFAULT_FILTER, help=f"MLflow search filter of the evaluation runs (default: {DEFAULT_FILTER})")
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM, help=f"Chromium executable (default: {DEFAULT_CHROMIUM})")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for one page element (default: 30)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("ui-check: the Python package playwright is missing: .venv/bin/pip install -e '.[ui-check]' "
              "(or make ui-check)", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(f"ui-check: Chromium not found at {args.chromium}: apt-get install -y chromium "
              "(or pass --chromium PATH)", file=sys.stderr)
        return 2
    args.screens.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            if args.demo_store:
                output_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="madx-ui-demo-")))
                args.experiment = build_demo_store(output_dir)
                timings["demo store"] = time.monotonic() - start
            else:
                output_dir = args.output_dir
                if not (output_dir / "mlflow.db").is_file():
                    raise CheckFailed(f"{output_dir / 'mlflow.db'} not found: give a finished pipeline output folder")
            mark = time.monotonic()
            expected = read_store(f"sqlite:///{(output_dir / 'mlflow.db').resolve()}", args.experiment, args.group_by,
                                  args.metric, args.filter, [g for g in args.expect_groups.split(",") if g])
            timings["read store"] = time.monotonic() - mark
            log(f"experiment {expected.experiment_name!r} (id {expected.experiment_id}, mlflow.experimentKind="
                f"{expected.kind_tag or 'unset'}): {len(expected.evaluation_run_ids)} evaluation runs; expecting, "
                f"grouped by {args.group_by}: " + "; ".join(
                    f"{metric} " + ", ".join(f"{g}={m:.4f}" for g, m in means.items()) for metric, means in expected.means.items()))

            mark = time.monotonic()
            url = stack.enter_context(mlflow_server(output_dir, args.port or free_port(), args.screens / "mlflow-server.log",
                                                    timeout=120))
            timings["server healthy"] = time.monotonic() - mark
            log(f"mlflow server ready at {url}")

            playwright = stack.enter_context(sync_playwright())
            try:
                browser = launch_browser(playwright, args.chromium)
            except Exception as error:  # playwright's Error: a broken install, missing libraries
                raise CheckFailed(f"Chromium at {args.chromium} did not start: {str(error).strip().splitlines()[0]}") from error
            stack.callback(browser.close)
            context = browser.new_context(viewport={"width": 1600, "height": 1100})
            context.add_init_script(QUIET_PANELS)
            page = context.new_page()
            check = UiCheck(page, url, expected, args.group_by, args.filter, args.screens, int(args.timeout * 1000))
            for label, step in (("default landing", check.default_landing), ("runs table", check.runs_table),
                                ("grouped", check.grouped), ("charts", check.charts)):
                mark = time.monotonic()
                try:
                    result = step()
                except Exception as error:
                    _shot_on_failure(check)
                    if isinstance(error, CheckFailed):
                        raise
                    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    raise CheckFailed(f"{label}: {type(error).__name__}: {first_line}") from error
                timings[label] = time.monotonic() - mark
                log(f"{label}: {_describe(label, result, args.group_by)}")
        except CheckFailed as failure:
            print(f"ui-check: FAILED: {failure}", file=sys.stderr)
            return 1
    timings["total"] = time.monotonic() - start
    log(f"passed; screenshots in {args.screens}")
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0


def _describe(label: str, result, group_by: GroupKey) -> str:
    if label == "default landing":
        return f"a new browser opens the plain experiment link in the {result} (information only)"
    if label == "runs table":
        return f"training view; nested runs expanded, {result} evaluation runs visible"
    if label == "grouped":
        return f"grouped by {group_by}: " + "; ".join(
            f"{metric} " + ", ".join(f"{g} {v:.4f} (average)" for g, v in groups.items()) for metric, groups in result.items())
    return "charts " + ", ".join(result)


def _shot_on_failure(check: UiCheck) -> None:
    with contextlib.suppress(Exception):
        log(f"failure screenshot: {check.shot('failure.png')} (page {check.page.url})")


if __name__ == "__main__":
    sys.exit(main())
