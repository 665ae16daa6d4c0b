"""Arrays read from disk a block at a time: the ``npy:`` (memory-mapped), ``h5:`` and ``zarr:`` sources.

A :class:`LazyRows` stands for rows of an on-disk array (an ``np.memmap``, an ``h5py.Dataset``, a ``zarr.Array``)
without reading them. ``rows[idx]`` reads the rows asked for as a float32 tensor; ``rows.subset(idx)`` is another
view (an index array, no copy); ``rows.split(n)`` reads them in order, n rows at a time. Splits, training epochs
(:func:`shuffled_batches`: contiguous blocks shuffled within a pool of blocks) and the checks over all the data
(:meth:`LazyRows.stats`, one streaming pass) never hold more than a pool of blocks in memory, so an epoch over a
file larger than memory streams from disk.

Under data-parallel training each process reads only its share of an epoch: the trainer hands the models a view
that knows its rank (:meth:`LazyRows.for_rank`), and :func:`shuffled_batches` then deals the shuffled blocks out to
the ranks (:func:`sharded_block_order`, a distributed sampler over blocks) and reads only this rank's rows.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

BLOCK_BYTES = 4 << 20  # a block, the unit of contiguous reads and of the shuffle: ~4 MB of float32 rows
MIN_BLOCK_ROWS = 64
POOL_BLOCKS = 16  # blocks shuffled together: at most ~64 MB of rows in memory at a time
MAX_GAP = 64  # wanted rows closer than this are read in one span (the rows between are read and dropped)
SPAN_BLOCKS = 4  # no single read spans more than this many blocks of rows

Transform = Callable[[torch.Tensor], torch.Tensor]


class DiskArray:
    """An on-disk array read by row ranges; it counts its reads, so tests can check that nothing reads it whole.

    :param array: anything sliced as ``array[start:stop]`` into a numpy array (memmap, h5py or zarr array).
    :param release: called after each read; for a memory map it drops the mapped pages from the process (the
        kernel keeps them in its page cache), else a pass over a mapped file would count all of it as resident.
    """

    def __init__(self, array: Any, release: Callable[[], None] | None = None):
        self.array, self.release = array, release or (lambda: None)
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)
        self.reads = 0
        self.max_rows_read = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        self.reads += 1
        self.max_rows_read = max(self.max_rows_read, stop - start)
        return np.asarray(self.array[start:stop])

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one example as models see it: 1-d data one feature, (H, W) images one channel."""
        rest = self.shape[1:]
        return (1,) if not rest else (1, *rest) if len(rest) == 2 else rest


def memmap_release(array: np.memmap) -> Callable[[], None]:
    """A ``release`` for :class:`DiskArray` that tells the kernel this process no longer needs the mapped pages."""
    mapped = getattr(array, "_mmap", None)
    if mapped is None or not hasattr(mmap, "MADV_DONTNEED"):
        return lambda: None
    return lambda: mapped.madvise(mmap.MADV_DONTNEED)


def as_float_rows(raw: np.ndarray, row_shape: tuple[int, ...]) -> np.ndarray:
    """Raw rows as float32 examples of ``row_shape`` (8-bit images scaled to [0, 1]), as ``from_arrays`` does."""
    x = raw / np.float32(255.0) if raw.dtype == np.uint8 else raw
    return np.ascontiguousarray(x, dtype=np.float32).reshape(len(raw), *row_shape)


@dataclass
class RowStats:
    """What one pass over the rows found: rows with NaN or infinite values, and the range of the finite values."""

    nonfinite_rows: int
    low: float
    high: float


class LazyRows:
    """Rows ``index`` of a :class:`DiskArray`, read only when asked for, each read passed through ``transform``.

    :param bounds: ``(low, high)`` known to hold every value (set after a pass over all the rows; views inherit it).
    :param stats: what a pass over these rows (transformed) already found, so that :meth:`stats` need not read them
        again; views compute their own.
    """

    def __init__(self, disk: DiskArray, index: np.ndarray | None = None, transform: Transform | None = None,
                 bounds: tuple[float, float] | None = None, stats: RowStats | None = None, shard: tuple[int, int] | None = None):
        self.disk = disk
        self.index = np.arange(disk.shape[0], dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        self.transform, self.bounds = transform, bounds
        self._stats = stats
        self.shard = shard  # (rank, world_size) of the data-parallel process that trains on these rows, if any

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.disk.row_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def block_rows(self) -> int:
        """Rows in one block of about :data:`BLOCK_BYTES`."""
        return max(MIN_BLOCK_ROWS, BLOCK_BYTES // (4 * math.prod(self.disk.row_shape)))

    def subset(self, key: Any) -> "LazyRows":
        """A view of some of the rows (``key``: indices, a boolean mask or a slice); nothing is read."""
        return LazyRows(self.disk, self.index[_as_numpy_key(key)], self.transform, self.bounds, shard=self.shard)

    def for_rank(self, rank: int, world_size: int) -> "LazyRows":
        """The same rows as one process of a data-parallel group trains on them: :func:`shuffled_batches` and
        :func:`batch_rows` then read only this rank's rows of each global batch (views keep the rank)."""
        return LazyRows(self.disk, self.index, self.transform, self.bounds, self._stats, shard=(rank, world_size))

    def with_transform(self, transform: Transform, bounds: tuple[float, float] | None = None) -> "LazyRows":
        """The same rows, each read passed through ``transform`` after this view's own."""
        inner = self.transform
        composed = transform if inner is None else (lambda t: transform(inner(t)))
        return LazyRows(self.disk, self.index, composed, bounds if bounds is not None else self.bounds, shard=self.shard)

    def __getitem__(self, key: Any) -> torch.Tensor:
        """The rows ``key`` selects, read from disk as one float32 tensor (one row for an integer key)."""
        key = _as_numpy_key(key)
        if isinstance(key, (int, np.integer)):
            return self.read(self.index[[key]])[0]
        return self.read(self.index[key])

    def read(self, positions: np.ndarray, raw: bool = False) -> torch.Tensor:
        """Rows at ``positions`` of the disk array, in that order: nearby rows are read in one span, far ones apart.
        ``raw``: without this view's transform."""
        positions = np.asarray(positions, dtype=np.int64)
        in_order = bool((np.diff(positions) >= 0).all())
        order = np.arange(len(positions)) if in_order else np.argsort(positions, kind="stable")
        ordered = positions[order]
        out = np.empty((len(positions), *self.disk.row_shape), dtype=np.float32)  # the one copy of the rows
        for start, stop in self._pieces(ordered):
            piece = ordered[start:stop]
            block = self.disk.read(int(piece[0]), int(piece[-1]) + 1)
            rows = as_float_rows(block if len(block) == len(piece) else block[piece - piece[0]], self.disk.row_shape)
            out[slice(start, stop) if in_order else order[start:stop]] = rows
            self.disk.release()
        rows = torch.from_numpy(out)
        return rows if self.transform is None or raw else self.transform(rows)

    def _pieces(self, ordered: np.ndarray) -> list[tuple[int, int]]:
        """``(start, stop)`` stretches of sorted ``ordered`` each read in one span: split where rows lie more than
        :data:`MAX_GAP` apart, or where a span would pass :data:`SPAN_BLOCKS` blocks."""
        if len(ordered) == 0:
            return []
        span = SPAN_BLOCKS * self.block_rows
        cuts = np.flatnonzero(np.diff(ordered) > MAX_GAP) + 1
        bounds = []
        for run_start, run_stop in zip(np.r_[0, cuts], np.r_[cuts, len(ordered)]):
            run = ordered[run_start:run_stop]
            inner = np.flatnonzero(np.diff((run - run[0]) // span)) + 1 + run_start
            edges = np.r_[run_start, inner, run_stop]
            bounds += list(zip(edges[:-1].tolist(), edges[1:].tolist()))
        return bounds

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """The rows in order, ``size`` at a time (as ``torch.Tensor.split``)."""
        for start in range(0, len(self), size):
            yield self.read(self.index[start:start + size])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row in memory: for small data and for code that needs it all (training and the commands do not)."""
        x = torch.cat(list(self.split(self.block_rows))).numpy()
        return x if dtype is None else x.astype(dtype)

    def stats(self) -> RowStats:
        """Non-finite rows and the value range, from one pass over the rows (cached)."""
        if self._stats is None:
            bad, low, high = 0, math.inf, -math.inf
            for chunk in self.split(self.block_rows):
                finite = torch.isfinite(chunk)
                if not bool(finite.all()):
                    bad += int((~finite).reshape(len(chunk), -1).any(1).sum())
                    chunk = chunk[finite]
                if chunk.numel():
                    low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
            self._stats = RowStats(bad, low, high)
        return self._stats

    def in_unit_interval(self) -> bool:
        if self.bounds is not None and self.bounds[0] >= 0 and self.bounds[1] <= 1:
            return True
        stats = self.stats()
        return stats.low >= 0 and stats.high <= 1


def _as_numpy_key(key: Any) -> Any:
    if torch.is_tensor(key):
        return key.item() if key.dim() == 0 else key.cpu().numpy()
    return key


def block_shuffled_order(n: int, block_rows: int, pool_blocks: int, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """A random order of ``range(n)`` that a reader can follow with contiguous reads: the blocks of ``block_rows``
    consecutive indices are shuffled, taken ``pool_blocks`` at a time, and the indices of each pool are shuffled
    together. Returns the order and the size of each pool (consecutive stretches of the order)."""
    starts = torch.arange(0, n, block_rows)
    blocks = starts[torch.randperm(len(starts), generator=generator)]
    pools = []
    for pool in blocks.split(pool_blocks):
        idx = torch.cat([torch.arange(s, min(s + block_rows, n)) for s in pool.tolist()])
        pools.append(idx[torch.randperm(len(idx), generator=generator)])
    return torch.cat(pools), [len(p) for p in pools]


def shuffled_batches(x: torch.Tensor | LazyRows, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of ``x`` in shuffled minibatches. A tensor is shuffled whole (``torch.randperm``, so seeds give the
    batches they always gave); rows on disk follow :func:`block_shuffled_order`, reading one pool at a time, or for
    a view of one rank of a data-parallel group (:meth:`LazyRows.for_rank`) :func:`sharded_batches`."""
    if not isinstance(x, LazyRows):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            yield x[idx]
        return
    if x.shard is not None and x.shard[1] > 1:
        yield from sharded_batches(x, batch_size, generator)
        return
    order, sizes = block_shuffled_order(len(x), x.block_rows, POOL_BLOCKS, generator)
    yield from _pooled(x, order.split(sizes), [batch_size] * -(-len(x) // batch_size))


def _pooled(x: LazyRows, pools: Iterator[torch.Tensor] | list[torch.Tensor], sizes: list[int], raw: bool = False) -> Iterator[torch.Tensor]:
    """Batches of ``sizes`` rows taken in turn from the concatenated ``pools`` (positions of ``x``), each pool read
    at once with contiguous reads; a batch may span two pools. ``raw``: without ``x``'s transform."""
    sizes = iter(sizes)
    size = next(sizes, 0)
    carry = torch.empty((0, *x.shape[1:]))  # rows of the last pool that did not fill a batch: they start the next one
    for pool in pools:
        wanted, local = np.unique(pool.numpy(), return_inverse=True)
        rows = None  # the last pool goes before the next is read: batches are copies, so one pool is held at a time
        rows = x.read(x.index[wanted], raw=raw)  # in disk order, read with contiguous reads
        local = torch.from_numpy(local.reshape(-1))
        while size and len(carry) + len(local) >= size:
            need = size - len(carry)
            batch = torch.cat([carry, rows[local[:need]]]) if len(carry) else rows[local[:need]]
            carry, local = carry[:0], local[need:]
            yield batch
            size = next(sizes, 0)
        carry = torch.cat([carry, rows[local]])
    if len(carry):
        yield carry


def rank_share(size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``size`` rows of a global batch (sizes differ by at most one)."""
    return slice(size * rank // world_size, size * (rank + 1) // world_size)


def sharded_block_order(n: int, block_rows: int, pool_blocks: int, batch_size: int, world_size: int,
                        generator: torch.Generator) -> tuple[list[torch.Tensor], list[list[int]], list[int]]:
    """A distributed sampler over blocks: one epoch of ``range(n)`` dealt out to ``world_size`` ranks so that each
    reads about ``n / world_size`` rows, in contiguous stretches.

    The blocks of ``block_rows`` consecutive indices are shuffled and laid end to end; that sequence is cut into one
    contiguous piece per rank, as long as the rows the rank takes of the epoch's global batches
    (:func:`rank_share` of each batch); each piece is shuffled within pools of ``pool_blocks`` blocks' rows. Global
    batch ``k`` is rank 0's next share of it, then rank 1's, and so on: every index once an epoch. Every rank draws
    the same permutations from ``generator`` (every rank's), so all ranks agree on the order and leave the generator
    in the same state. Returns each rank's order, each rank's pool sizes, and the global batch sizes."""
    starts = torch.arange(0, n, block_rows)
    blocks = starts[torch.randperm(len(starts), generator=generator)]
    laid = torch.cat([torch.arange(s, min(s + block_rows, n)) for s in blocks.tolist()]) if n else torch.empty(0, dtype=torch.long)
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    counts = [sum(len(range(n)[rank_share(b, rank, world_size)]) for b in sizes) for rank in range(world_size)]
    orders, pools = [], []
    for piece in laid.split(counts):
        parts = [p[torch.randperm(len(p), generator=generator)] for p in piece.split(pool_blocks * block_rows)]
        orders.append(torch.cat(parts) if parts else piece)
        pools.append([len(p) for p in parts])
    return orders, pools, sizes


def sharded_batches(x: LazyRows, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The epoch's global batches (:func:`sharded_block_order`) as a rank of a data-parallel group sees them: its own
    rows (:func:`rank_share` of each batch) read from disk, the other ranks' rows left zero. The trainer keeps only
    this rank's rows (:func:`~ppmodels.infer.distributed.rank_slice`); the batch keeps its global size, so
    everything that depends on it (``num_data`` scaling, draws from ``generator``, such as a dynamic binarization
    applied here to the whole batch) is the same on every rank."""
    rank, world_size = x.shard
    orders, pools, sizes = sharded_block_order(len(x), x.block_rows, POOL_BLOCKS, batch_size, world_size, generator)
    mine = [len(range(size)[rank_share(size, rank, world_size)]) for size in sizes]
    local = _pooled(x, orders[rank].split(pools[rank]), [m for m in mine if m], raw=True)
    for size, count in zip(sizes, mine):
        batch = torch.zeros((size, *x.shape[1:]))
        if count:
            batch[rank_share(size, rank, world_size)] = next(local)
        yield batch if x.transform is None else x.transform(batch)


def batch_rows(x: torch.Tensor | LazyRows, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]``, a batch drawn by index (the labeled rows of a semi-supervised step); for a view of one rank of a
    data-parallel group only this rank's share of the rows is read, the others are zero, as in :func:`sharded_batches`."""
    if not isinstance(x, LazyRows) or x.shard is None or x.shard[1] == 1:
        return x[idx]
    share = rank_share(len(idx), *x.shard)
    batch = torch.zeros((len(idx), *x.shape[1:]))
    batch[share] = x.read(x.index[_as_numpy_key(idx[share])], raw=True)
    return batch if x.transform is None else x.transform(batch)


def map_rows(fn: Callable[[Any], Any], x: Any, batch_size: int = 2000) -> Any:
    """``fn(x)``, computed ``batch_size`` rows at a time when ``x`` is on disk and joined (arrays, tensors or tuples
    of them); in memory ``fn`` sees all of ``x`` at once, as before."""
    if not isinstance(x, LazyRows):
        return fn(x)
    parts = [fn(chunk) for chunk in x.split(batch_size)]
    return _join(parts)


def _join(parts: list) -> Any:
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_join([p[i] for p in parts]) for i in range(len(first)))
    if torch.is_tensor(first):
        return torch.cat(parts)
    return np.concatenate([np.asarray(p) for p in parts])


def take_rows(x: torch.Tensor | LazyRows, key: Any) -> torch.Tensor | LazyRows:
    """Rows ``key`` of ``x``: indexed in memory, a view (nothing read) on disk."""
    return x.subset(key) if isinstance(x, LazyRows) else x[key]


def row_moments(x: torch.Tensor | np.ndarray | LazyRows) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance divided by N (D, D) of the flattened rows of ``x``, in float64; rows on disk are
    summed a block at a time (one pass)."""
    if not isinstance(x, LazyRows):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return x.mean(0), np.atleast_2d(np.cov(x.T, bias=True))
    total, outer = 0.0, 0.0
    for chunk in x.split(x.block_rows):
        flat = chunk.reshape(len(chunk), -1).double().numpy()
        total, outer = total + flat.sum(0), outer + flat.T @ flat
    mean = total / len(x)
    return mean, outer / len(x) - np.outer(mean, mean)


def sample_rows(x: torch.Tensor | LazyRows, max_rows: int, seed: int = 0) -> torch.Tensor:
    """``x`` in memory; rows on disk beyond ``max_rows`` are a seeded random sample of ``max_rows`` of them (for
    starting values, such as k-means, that need the rows together)."""
    if not isinstance(x, LazyRows):
        return x
    if len(x) <= max_rows:
        return x[:]
    return x[np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))]
