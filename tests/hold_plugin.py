"""A test-only plugin: rank 0 of a ``ppmodels train --devices N`` run stops at a chosen step until the test lets it go.

tests/cli/test_operators.py names this file in ``PPMODELS_PLUGINS`` (every process of the run imports it, as a
user's plugin) and the point in ``PPMODELS_TEST_HOLD``: ``STEP:signal`` or ``STEP:stdin``. Right after the trainer
emitted ``on_step_end`` for step ``STEP`` (rank 0 alone emits callbacks), rank 0 prints ``ready`` on its stdout (the
launcher's, which the test reads; the other ranks wait for it in their next collective), then

- ``signal``: waits until this process gets a signal (Python's wakeup fd, written by the C-level handler whichever
  thread the kernel delivers it to), after which the trainer's own handler has it: the run stops at this step
  boundary as a preempted one does;
- ``stdin``: waits for a line on its stdin (the launcher's, inherited), while the test acts on another process.

Every training process writes its pid to ``PPMODELS_TEST_HOLD_PIDS/rankR.pid`` when it imports this (the test stops
a peer by pid). No clock and no polling: each wait is a blocking read. It registers no model, so the run folder
records no plugin.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ppmodels.infer.trainer import Trainer

step, _, mode = os.environ["PPMODELS_TEST_HOLD"].partition(":")
if "RANK" in os.environ and os.environ.get("PPMODELS_TEST_HOLD_PIDS"):
    Path(os.environ["PPMODELS_TEST_HOLD_PIDS"], f"rank{os.environ['RANK']}.pid").write_text(str(os.getpid()))
emit = Trainer._emit


def emit_then_hold(self, hook, *args):
    emit(self, hook, *args)
    if hook != "on_step_end" or self.rank != 0 or self.state.step != int(step):
        return
    if mode == "signal":
        wake, woken = os.pipe()
        os.set_blocking(woken, False)
        signal.set_wakeup_fd(woken)  # before `ready`: the test signals only after reading it, so nothing slips past
        print("ready", flush=True)
        os.read(wake, 1)
        signal.set_wakeup_fd(-1)
    else:
        print("ready", flush=True)
        sys.stdin.readline()


Trainer._emit = emit_then_hold
