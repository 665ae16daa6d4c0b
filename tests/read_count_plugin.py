"""A test-only plugin: a ``ppmodels`` process that imports it counts the rows its training epochs read from disk.

tests/train/test_distributed.py names this file in ``PPMODELS_PLUGINS`` (imported by every process of a run, as a
user's plugin is) and a folder in ``PPMODELS_TEST_READS``. Each process counts the rows every
:class:`~ppmodels.data.lazy.DiskArray` read returned while the trainer drew an epoch's batches (not the checks,
validation or summary passes) and, when it exits, writes ``rank{RANK}.json``: a list of the disk rows read, one
entry per row per read, per epoch. Blocks are 64 rows (``BLOCK_BYTES = 1``) so that a small file has many. It
registers no model, so the run folder records no plugin.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

from ppmodels.data import lazy
from ppmodels.infer.trainer import Trainer

lazy.BLOCK_BYTES = 1
counting = False
epochs: list[list[int]] = []
read = lazy.DiskArray.read
epoch_batches = Trainer._epoch_batches


def counted_read(self, start, stop):
    if counting:
        epochs[-1].extend(range(start, stop))
    return read(self, start, stop)


def counted_epoch_batches(self):
    global counting
    epochs.append([])
    batches = epoch_batches(self)
    while True:
        counting = True
        try:
            batch = next(batches)
        except StopIteration:
            return
        finally:
            counting = False
        yield batch


@atexit.register
def write_counts():
    Path(os.environ["PPMODELS_TEST_READS"], f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(epochs))


lazy.DiskArray.read = counted_read
Trainer._epoch_batches = counted_epoch_batches
