"""`cpu_weight_lower`: the drills give the webhook pool the lower CPU weight the README's
deployment gives the webhook service, on the kernel's session group where it groups sessions
(autogroup) and on each process elsewhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from messaging.management.commands._bench_load import AUTOGROUP_SWITCH, cpu_weight_lower, process_stop


@pytest.fixture
def session_leader():
    """A process in a session (and process group) of its own, as `Server` starts gunicorn."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process_stop(process)


def _autogroups() -> bool:
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


def test_lowers_the_weight_of_the_whole_session_by_the_steps_given(session_leader):
    applied = cpu_weight_lower(session_leader.pid, 10)

    if _autogroups():
        assert applied == "autogroup nice 10"
        assert Path(f"/proc/{session_leader.pid}/autogroup").read_text().split()[-2:] == ["nice", "10"]
        # The caller's own group is untouched.
        assert not Path("/proc/self/autogroup").read_text().rstrip().endswith("nice 10")
    else:
        assert applied == "nice 10"
        assert os.getpriority(os.PRIO_PROCESS, session_leader.pid) == 10
        assert os.getpriority(os.PRIO_PROCESS, 0) != 10


def test_zero_steps_leaves_the_weight_as_it_is(session_leader):
    before = Path(f"/proc/{session_leader.pid}/autogroup").read_text() if _autogroups() else None
    priority = os.getpriority(os.PRIO_PROCESS, session_leader.pid)

    assert cpu_weight_lower(session_leader.pid, 0) == "default"

    assert os.getpriority(os.PRIO_PROCESS, session_leader.pid) == priority
    if before is not None:
        assert Path(f"/proc/{session_leader.pid}/autogroup").read_text() == before
