"""Every dependency is pinned, and the lock file records no download address or registry host."""

import re
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def test_lock_pins_every_requirement_exactly():
    requirements = [line for line in LOCK.read_text().splitlines()
                    if line and not line.startswith((" ", "#"))]
    assert len(requirements) > 50
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", r) for r in requirements), [
        r for r in requirements if "==" not in r]


def test_lock_records_no_download_addresses_or_registry_hosts():
    text = LOCK.read_text()
    assert "://" not in text
    assert not re.search(r"--(extra-)?index-url|--find-links|pypi\.org|files\.pythonhosted", text)
