"""A test-only plugin: a ``ppmodels`` process that imports it SIGKILLs itself at a defined point of training.

tests/cli/test_resume_after_kill.py and tests/train/test_distributed.py name this file in ``PPMODELS_PLUGINS`` (imported at the first registry lookup
of every process, as a user's plugin is) and the point in ``PPMODELS_TEST_KILL``: ``HOOK:N``, the moment right
after the trainer has emitted callback hook ``HOOK`` (``on_epoch_end``, ``on_checkpoint``, ``on_step_end``...) for
the ``N``-th time in this process; with ``PPMODELS_TEST_KILL_RANK=R`` set, only the process whose ``RANK`` (set by
torchrun) is ``R`` dies. After ``on_epoch_end`` the metrics line of that epoch is on disk and its
checkpoint not yet written; after ``on_checkpoint`` the new ``last.pt`` has just been renamed into place. So the
kill lands where the test says, on any machine at any speed, with no clock and no polling. It registers no model,
so the run folder records no plugin and equals a run made without it.
"""

from __future__ import annotations

import os
import signal

from ppmodels.infer.trainer import Trainer

ENV_VAR = "PPMODELS_TEST_KILL"
hook_name, _, count = os.environ[ENV_VAR].partition(":")
target = int(count or 1)
dies = os.environ.get("PPMODELS_TEST_KILL_RANK", os.environ.get("RANK", "0")) == os.environ.get("RANK", "0")
seen = 0
emit = Trainer._emit


def emit_then_maybe_die(self, hook, *args):
    global seen
    emit(self, hook, *args)
    if hook == hook_name:
        seen += 1
        if seen == target and dies:
            os.kill(os.getpid(), signal.SIGKILL)


Trainer._emit = emit_then_maybe_die
