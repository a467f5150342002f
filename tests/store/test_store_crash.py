"""A LocalStore writer killed between any two steps of a write leaves the old or the new object.

One child process (a real interpreter) imports the store once, then forks one writer per case;
each writer sets the store's test-only hook ``local._after_step`` to ``os._exit`` at its step
(see ``WRITE_STEPS``) and writes. The writer dies there for real: no ``finally``, no lock
release other than the kernel's, no cleanup. Afterwards every read from this process must
return the old version (killed before the commit) or the new one (after it), verified by its
SHA-256, never an error or garbage; and the store takes the next write.

A killed process does not lose the page cache, so this proves the order of the steps; the fsync
of blob, metadata record and directories before the old blob is dropped is what carries that
order through a power cut.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_onprem.store.local import WRITE_STEPS, LocalStore

CRASH_EXIT = 71
OLD, NEW = b"old version " * 100, b"new version " * 200
OLD_POINTER, NEW_POINTER = {"version": 1}, {"version": 2}
KINDS = ("bytes", "file", "pointer")
KEY = {"bytes": "data/ds/obj.bin", "file": "data/ds/obj.parquet",
       "pointer": "models/demo/aliases/champion.json"}
COMMITTED_FROM = WRITE_STEPS.index("committed")

WRITER = r"""
import json, os, sys
from pathlib import Path
from mlops_onprem.store import local

cases = json.loads(sys.argv[1])
codes = {}
for case in cases:
    pid = os.fork()
    if pid == 0:  # the writer: single-threaded, dies at its step
        def crash(step, at=case["step"]):
            if step == at:
                os._exit(int(sys.argv[2]))
        store = local.LocalStore(Path(case["root"]))
        local._after_step = crash
        if case["kind"] == "bytes":
            store.put_bytes(case["key"], bytes.fromhex(case["new"]))
        elif case["kind"] == "file":
            store.put_file(case["key"], Path(case["new_file"]))
        else:
            store.write_pointer(case["key"], json.loads(case["new"]), expected_token=case["token"])
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    codes[case["root"]] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


def _prepare(root: Path, kind: str, tmp_path: Path) -> dict:
    store = LocalStore(root)
    key = KEY[kind]
    case = {"root": str(root), "kind": kind, "key": key, "token": None}
    if kind == "pointer":
        case["token"] = store.write_pointer(key, OLD_POINTER, expected_token=None).token
        case["new"] = json.dumps(NEW_POINTER)
    elif kind == "file":
        source = tmp_path / f"{root.name}.src"
        source.write_bytes(OLD)
        store.put_file(key, source)
        new_file = tmp_path / f"{root.name}.new"
        new_file.write_bytes(NEW)
        case["new_file"] = str(new_file)
    else:
        store.put_bytes(key, OLD)
        case["new"] = NEW.hex()
    return case


def _read_everything(store: LocalStore, kind: str, key: str, tmp_path: Path) -> object:
    """Every read path of the store; they must agree on one version."""
    if kind == "pointer":
        pointer = store.read_pointer(key)
        assert pointer is not None and store.get_json(key) == pointer.value
        version: object = pointer.value
        data = store.get_bytes(key)
    else:
        data = store.get_bytes(key)
        copy = tmp_path / "copy.bin"
        store.get_file(key, copy)
        assert copy.read_bytes() == data
        version = data
    info = store.stat(key)
    assert info.size == len(data)
    assert [i.key for i in store.list(key.rsplit("/", 1)[0] + "/")] == [key]
    assert store.exists(key)
    return version


def test_a_writer_killed_between_any_two_steps_leaves_the_old_or_the_new_object(tmp_path):
    cases = []
    for step in WRITE_STEPS:
        for kind in KINDS:
            cases.append({**_prepare(tmp_path / f"{step}-{kind}", kind, tmp_path), "step": step})
    child = subprocess.run([sys.executable, "-c", WRITER, json.dumps(cases), str(CRASH_EXIT)],
                           capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    codes = json.loads(child.stdout)

    for case in cases:
        step, kind, key = case["step"], case["kind"], case["key"]
        assert codes[case["root"]] == CRASH_EXIT, f"{kind} writer did not die at {step}"
        store = LocalStore(Path(case["root"]))
        old, new = (OLD_POINTER, NEW_POINTER) if kind == "pointer" else (OLD, NEW)
        seen = _read_everything(store, kind, key, tmp_path)
        expected = new if WRITE_STEPS.index(step) >= COMMITTED_FROM else old
        assert seen == expected, f"{kind} killed after {step}: read {'new' if seen == new else 'old'}"
        # the store is usable afterwards: the key's lock died with the writer
        if kind == "pointer":
            token = store.read_pointer(key).token
            store.write_pointer(key, {"version": 3}, expected_token=token)
            assert store.read_pointer(key).value == {"version": 3}
        else:
            store.put_bytes(key, b"third")
            assert store.get_bytes(key) == b"third"


@pytest.mark.parametrize("kind", KINDS)
def test_a_write_that_is_not_killed_removes_the_old_blob(tmp_path, kind):
    root = tmp_path / kind
    case = _prepare(root, kind, tmp_path)
    store = LocalStore(root)
    old_blob = store.blob_path(case["key"])
    if kind == "pointer":
        store.write_pointer(case["key"], NEW_POINTER, expected_token=case["token"])
    elif kind == "file":
        store.put_file(case["key"], Path(case["new_file"]))
    else:
        store.put_bytes(case["key"], NEW)
    assert not old_blob.exists() and store.blob_path(case["key"]).exists()
