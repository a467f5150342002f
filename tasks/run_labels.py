"""Flow run names, tags and outcome marks: what a data engineer reads in the Prefect runs list.

Every flow names its runs from its parameters (``ingest demo scoring``, ``score demo
demo@champion new``, ``monitor demo``) and tags them ``dataset:<ds>`` / ``model:<name>``. An
outcome worth seeing in the list is appended to the name and tagged (the design's choice: the
state stays Completed when the run did its job, e.g. a monitoring run that found drift; a
rejected batch already fails its run): `` - drift``, `` - insufficient data``,
`` - N rejected``.

:func:`related_links` ends an artifact with links to the artifacts it refers to (by key: the UI's
``/artifacts/key/<key>`` page shows the latest version and its history) and to the run that made
it, built from ``PREFECT_UI_URL``; without a UI URL (embedded) it names the keys instead.
Every artifact key is built by :func:`artifact_key`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from prefect import runtime
from prefect.logging import get_run_logger


def artifact_key(*parts: str) -> str:
    """The Prefect artifact key of ``parts`` (e.g. ``("model-card", model_name)``): joined by
    dashes, lowercase letters, digits and dashes only (what Prefect allows), at most 200
    characters."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:200]


def _parameters() -> dict[str, Any]:
    return dict(runtime.flow_run.parameters or {})


def run_name(template: Callable[[dict[str, Any]], str]) -> Callable[[], str]:
    """A ``flow_run_name`` callable building the name from the run's parameters."""
    def name() -> str:
        return " ".join(template(_parameters()).split())
    return name


def mark_run(*, suffix: str | None = None, tags: Iterable[str] = ()) -> None:
    """Append ``suffix`` to the current flow run's name and add ``tags`` (best effort: failing
    to label never fails the run)."""
    from prefect.client.orchestration import get_client

    run_id = runtime.flow_run.id
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id)
            name = current.name + suffix if suffix and not current.name.endswith(suffix) else None
            client.update_flow_run(run_id, name=name,
                                   tags=sorted(set(current.tags) | set(tags)) if tags else None)
    except Exception as exc:  # noqa: BLE001 - a label is never worth a failed run
        get_run_logger().warning("could not label the flow run: %s", type(exc).__name__)


def related_links(artifact_keys: dict[str, str], *, this_run: bool = True,
                  ui_url: str | None = None) -> str:
    """A markdown line linking ``{label: artifact key}`` (and the current flow run) in the UI
    at ``ui_url`` (default: Prefect's ``PREFECT_UI_URL``; empty: name the keys instead)."""
    from prefect.settings import get_current_settings

    ui = (get_current_settings().ui_url if ui_url is None else ui_url) or ""
    ui = ui.rstrip("/")
    parts = [f"[{label}]({ui}/artifacts/key/{key})" if ui else f"{label} `{key}`"
             for label, key in artifact_keys.items()]
    if this_run and runtime.flow_run.id and ui:  # the page Prefect's own "View at" logs name
        parts.append(f"[this run]({ui}/runs/flow-run/{runtime.flow_run.id})")
    elif this_run and runtime.flow_run.id:
        parts.append(f"this run `{runtime.flow_run.name}` (`{runtime.flow_run.id}`)")
    return "**Related:** " + " · ".join(parts) if parts else ""
