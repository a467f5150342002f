"""Artifacts link to the artifacts they refer to and to their run: UI links from PREFECT_UI_URL,
the keys by name without a UI."""

from __future__ import annotations

from prefect import flow
from prefect.settings import PREFECT_UI_URL, temporary_settings

from tasks.run_labels import related_links

UI = "http://127.0.0.1:4200"


def test_links_by_artifact_key_and_to_the_run_with_a_ui_and_names_without():
    @flow(flow_run_name="linking")
    def linking() -> tuple[str, str]:
        with temporary_settings({PREFECT_UI_URL: UI}):
            linked = related_links({"model card": "model-card-demo"})
        return linked, related_links({"model card": "model-card-demo"}, ui_url="")

    linked, named = linking()
    assert f"[model card]({UI}/artifacts/key/model-card-demo)" in linked
    assert f"[this run]({UI}/runs/flow-run/" in linked
    assert "model card `model-card-demo`" in named and "this run `linking`" in named
    assert related_links({}, this_run=False) == ""
