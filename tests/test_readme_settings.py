"""The README's settings table lists every setting the code reads."""

from pathlib import Path

from mlops_onprem.settings import Settings


def test_every_setting_is_documented_in_the_readme_table():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [f"MLOPS_{name.upper()}" for name in Settings.model_fields
               if f"| `MLOPS_{name.upper()}` |" not in readme]
    assert missing == []
