"""`io.runlock.locked_file`: an interrupted wait never keeps the file's descriptor, or its lock."""

from __future__ import annotations

import fcntl
import os

import pytest

from a3d_cli.io.runlock import locked_file


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_interrupted_lock_gives_back_the_descriptor_and_the_lock(tmp_path, monkeypatch):
    """Ctrl-C (or an unreadable path) after the lock was taken but before it was checked: the descriptor is
    closed, so no lock stays behind to block every later batch writing the same results file."""
    path = tmp_path / "results.jsonl"
    path.write_text("")
    before = open_descriptors()

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os.path, "samestat", interrupted)
    with pytest.raises(KeyboardInterrupt), locked_file(path):
        pass
    monkeypatch.undo()
    assert open_descriptors() == before
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while a leaked descriptor holds it
    finally:
        os.close(fd)

