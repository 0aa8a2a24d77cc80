"""Per-language deployments: what `madx serve` registers with a Prefect server and runs.

One deployment per configured language, named `madx-<config name>-<language>` (configs/demo.yaml,
named madx-demo: `madx-demo-sw`), running the flow `flows.pipeline.train_language_adapter` with the
parameters `config_path` (absolute, so the runs do not depend on the directory `madx serve` was
started in) and `language`. Each run reloads the YAML, so an edited config takes effect at the next
run; an unchanged adapter is reused, not retrained.

A language with a `schedule` (a 5-field cron) runs on it; a language without one is still served,
unscheduled: it runs only when triggered (`prefect deployment run NAME` or the Prefect UI). That way
every language can be retrained on demand from the same served process, and the schedules stay
exactly those the config lists.

Schedules need a real Prefect server: with none configured, Prefect runs flows on a temporary local
API, where `serve` accepts deployments but never schedules a run. `require_prefect_server` checks
for one first and says how to start it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from madx.errors import MadxError

if TYPE_CHECKING:  # flows.config pulls in the data packages: keep the server check light
    from flows.config import PipelineConfig

FLOW_NAME = "madx-train-language-adapter"  # the @flow name of flows.pipeline.train_language_adapter
DEFAULT_TIMEZONE = "UTC"

START_SERVER_HINT = (
    "start one in another terminal with\n"
    "    madx server\n"
    "then, in this terminal,\n"
    "    export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
    "and run this command again (schedules do nothing on Prefect's temporary local server)"
)


@dataclass(frozen=True)
class LanguageDeployment:
    """What is served for one language (plain data: printable and testable without Prefect)."""

    name: str
    language: str
    config_path: str
    cron: str | None  # None: runs only when triggered

    @property
    def full_name(self) -> str:
        """The name `prefect deployment run` takes: <flow name>/<deployment name>."""
        return f"{FLOW_NAME}/{self.name}"

    @property
    def parameters(self) -> dict[str, str]:
        return {"config_path": self.config_path, "language": self.language}


def deployment_name(config: PipelineConfig, language: str) -> str:
    """madx-<config name>-<language> (no stutter for a config already named madx-...)."""
    # Prefect rejects '/', '%', '&', '<', '>' in names; keep names shell-friendly too.
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "-", config.name).strip("-") or "pipeline"
    prefix = "" if safe == "madx" or safe.startswith("madx-") else "madx-"
    return f"{prefix}{safe}-{language}"


def language_deployments(config: PipelineConfig, languages: list[str] | None = None) -> list[LanguageDeployment]:
    """One entry per configured language (or per language of `languages`), sorted by language."""
    if config.source_file is None:
        raise MadxError("a served config needs its YAML file (load it with load_pipeline_config)")
    wanted = sorted(config.languages) if languages is None else list(dict.fromkeys(languages))
    unknown = [code for code in wanted if code not in config.languages]
    if unknown:
        raise MadxError(f"language(s) {unknown} are not in {config.source_file} "
                        f"(languages: {sorted(config.languages)})")
    config_path = str(Path(config.source_file).resolve())
    return [LanguageDeployment(deployment_name(config, code), code, config_path, config.languages[code].schedule)
            for code in sorted(wanted)]


def require_prefect_server() -> str:
    """The API URL of the configured Prefect server, after checking that it answers.

    Raises MadxError, saying how to start a server, when none is configured or it does not answer.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise MadxError("no Prefect server is configured (PREFECT_API_URL is not set): " + START_SERVER_HINT)
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise MadxError(f"the Prefect server at PREFECT_API_URL={url} does not answer ({problem}): "
                        + START_SERVER_HINT)
    return url


def build_deployments(config: PipelineConfig, languages: list[str] | None = None, timezone: str = DEFAULT_TIMEZONE):
    """Prefect RunnerDeployments for `language_deployments(config, languages)`, cron in `timezone`."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.pipeline import train_language_adapter

    _check_timezone(timezone)
    deployments = []
    for item in language_deployments(config, languages):
        when = f"on cron '{item.cron}' ({timezone})" if item.cron else "when triggered"
        deployments.append(train_language_adapter.to_deployment(
            item.name,
            schedules=[Cron(item.cron, timezone=timezone)] if item.cron else [],
            parameters=item.parameters,
            description=f"Train the {item.language!r} language adapter of pipeline {config.name!r} "
                        f"({item.config_path}) {when}.",
            tags=["madx", f"pipeline:{config.name}", f"language:{item.language}"],
            # A module path, not a file path: the runs import the installed package from any directory.
            entrypoint_type=EntrypointType.MODULE_PATH,
        ))
    return deployments


def _check_timezone(timezone: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MadxError(f"unknown time zone {timezone!r}: give an IANA name such as UTC or Europe/Berlin") from None


def serve_deployments(deployments: list, limit: int | None = 1, shutdown_grace: float = 60.0) -> None:
    """Register `deployments` with the configured Prefect server and execute their flow runs here, each
    in a subprocess, until interrupted. Ctrl-C (or SIGTERM) stops serving and pauses their schedules, so
    runs do not pile up while nothing serves them; serving again resumes them. At most `limit` runs at
    a time (None: no limit).

    Prefect's runner, once cancelled by Ctrl-C, sometimes never finished its shutdown (seen on loaded
    machines after a completed run, the cause inside Prefect not found): the command then hung. So the
    first Ctrl-C also arms a watchdog: if serving has not ended `shutdown_grace` seconds later, the
    deployments are paused here and the process exits, saying so."""
    import asyncio

    from prefect import aserve

    require_prefect_server()

    async def serve_bounded() -> None:
        # asyncio.run installed its Ctrl-C handler (it cancels this task); wrap it to arm the watchdog.
        cancel_on_interrupt = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum, frame) -> None:
            _arm_shutdown_watchdog([d.name for d in deployments], shutdown_grace)
            if callable(cancel_on_interrupt):
                cancel_on_interrupt(signum, frame)

        if callable(cancel_on_interrupt) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, on_interrupt)
        await aserve(*deployments, limit=limit, print_starting_message=False)

    try:
        asyncio.run(serve_bounded())
    except KeyboardInterrupt:
        pass  # the schedules were paused by the runner on its way out


_watchdog: threading.Timer | None = None


def _arm_shutdown_watchdog(names: list[str], grace: float) -> None:
    global _watchdog
    if _watchdog is not None:
        return
    _watchdog = threading.Timer(grace, _pause_and_exit, args=(names, grace))
    _watchdog.daemon = True
    _watchdog.start()


def _pause_and_exit(names: list[str], grace: float) -> None:
    """Prefect's shutdown hung: pause the served deployments' schedules ourselves, then exit."""
    from prefect.client.orchestration import get_client

    problem = None
    try:
        with get_client(sync_client=True) as client:
            for name in names:
                client.pause_deployment(client.read_deployment_by_name(f"{FLOW_NAME}/{name}").id)
    except Exception as error:  # noqa: BLE001 - said below; exiting is what matters now
        problem = error
    said = "schedules paused" if problem is None else f"pausing the schedules failed ({problem}); pause them in the UI"
    sys.stderr.write(f"madx serve: Prefect's shutdown did not finish within {grace:.0f} s of Ctrl-C; {said}; "
                     "exiting.\n")
    sys.stderr.flush()
    os._exit(0 if problem is None else 1)
