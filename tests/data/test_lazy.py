"""Out-of-core sources: npy memory-mapped, h5 and zarr read lazily, block-shuffled epochs, streaming checks."""

import h5py
import numpy as np
import pytest
import torch
import zarr

import ppmodels
from ppmodels.data import LazyRows, block_shuffled_order, load_dataset, shuffled_batches
from ppmodels.data.lazy import DiskArray, batch_rows, rank_share, sharded_block_order
from ppmodels.infer.distributed import rank_slice
from ppmodels.data import lazy
from ppmodels.errors import DataError, DataNotFoundError
from ppmodels.infer import TrainConfig
from tests.helpers import assert_close_scaled

N, D = 900, 8


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 rows, pools of 16 blocks, reads of at most 4 blocks (far below the files' 900 rows); a read of
    more, or a conversion of a whole LazyRows to an array, fails the test."""
    monkeypatch.setattr(lazy, "BLOCK_BYTES", 1)
    limit = lazy.SPAN_BLOCKS * lazy.MIN_BLOCK_ROWS
    read = lazy.DiskArray.read

    def bounded_read(self, start, stop):
        assert stop - start <= limit, f"read {stop - start} rows at once"
        return read(self, start, stop)

    def whole(self, *args, **kwargs):
        raise AssertionError("a LazyRows was read whole")

    monkeypatch.setattr(lazy.DiskArray, "read", bounded_read)
    monkeypatch.setattr(lazy.LazyRows, "__array__", whole)
    return limit


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    x = 1 / (1 + np.exp(-rng.normal(size=(N, D)) * 2))
    return x.astype(np.float32), np.arange(N) % 3


def write(tmp_path, kind, x, y=None):
    if kind == "npy":
        np.save(tmp_path / "x.npy", x)
        return f"npy:{tmp_path}/x.npy"
    if kind == "h5":
        with h5py.File(tmp_path / "x.h5", "w") as f:
            f["x"] = x
            if y is not None:
                f["labels"] = y
        return f"h5:{tmp_path}/x.h5?y=labels"
    group = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    group.create_array("x", data=x, chunks=(100, x.shape[1]))
    if y is not None:
        group.create_array("y", data=y)
    return f"zarr:{tmp_path}/x.zarr"


@pytest.mark.parametrize("kind, backing", [("npy", np.memmap), ("h5", h5py.Dataset), ("zarr", zarr.Array)])
def test_sources_stay_on_disk_and_splits_are_index_views(tmp_path, kind, backing):
    x, y = arrays()
    d = load_dataset(write(tmp_path, kind, x, y))
    assert isinstance(d.x, LazyRows) and isinstance(d.x.disk.array, backing)
    train = d.split("train")
    assert isinstance(train.x, LazyRows) and train.x.disk is d.x.disk
    np.testing.assert_array_equal(train.x.index, d.splits["train"])
    np.testing.assert_array_equal(train.x[:5].numpy(), x[d.splits["train"][:5]])
    assert d.likelihood == "bernoulli" and d.x_shape == (D,)
    if kind != "npy":
        np.testing.assert_array_equal(d.y, y)


def test_lazy_0_reads_into_memory(tmp_path):
    x, _ = arrays()
    d = load_dataset(write(tmp_path, "npy", x) + "?lazy=0")
    assert type(d.x) is np.ndarray
    with pytest.raises(DataError, match="lazy=maybe"):
        load_dataset(write(tmp_path, "npy", x) + "?lazy=maybe")


def test_zarr_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(f"zarr:{tmp_path}/none.zarr")
    write(tmp_path, "zarr", arrays()[0])
    with pytest.raises(DataError, match="no array 'pixels'"):
        load_dataset(f"zarr:{tmp_path}/x.zarr?x=pixels")


def test_block_shuffle_visits_every_index_once():
    gen = torch.Generator().manual_seed(0)
    for n, block, pool in [(1000, 64, 4), (1000, 64, 100), (7, 3, 2), (64, 64, 1)]:
        order, sizes = block_shuffled_order(n, block, pool, gen)
        assert sorted(order.tolist()) == list(range(n)) and sum(sizes) == n
        for part in order.split(sizes):  # a pool is made of whole blocks
            assert set((part // block).tolist()) and len(part) == sum(min(block, n - b * block) for b in set((part // block).tolist()))
    order, _ = block_shuffled_order(1000, 64, 4, gen)
    assert not torch.equal(order, torch.arange(1000))


def test_shuffled_batches_read_pools_not_the_file(tmp_path, small_blocks):
    x = np.arange(N, dtype=np.float32)[:, None] * np.ones((1, D), np.float32)  # row i holds i
    rows = load_dataset(write(tmp_path, "npy", x) + "?likelihood=gaussian").x
    reads_before = rows.disk.reads
    batches = list(shuffled_batches(rows, 50, torch.Generator().manual_seed(1)))
    seen = torch.cat(batches)[:, 0].long()
    assert sorted(seen.tolist()) == list(range(N))  # each row exactly once in the epoch
    assert all(len(b) == 50 for b in batches[:-1]) and len(batches) == -(-N // 50)
    assert rows.disk.reads > reads_before and rows.disk.max_rows_read <= small_blocks


@pytest.mark.parametrize("batch_size", [50, 100, 2 * N])
def test_shuffled_batches_are_never_empty_when_a_pool_is_smaller_than_a_batch(tmp_path, small_blocks, batch_size):
    x = np.arange(N, dtype=np.float32)[:, None] * np.ones((1, D), np.float32)
    rows = load_dataset(write(tmp_path, "npy", x) + "?likelihood=gaussian").x
    batches = list(shuffled_batches(rows, batch_size, torch.Generator().manual_seed(0)))
    assert min(len(b) for b in batches) > 0 and sum(len(b) for b in batches) == N


class CountingArray:
    """An array on disk that remembers which rows each read fetched."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.rows = array, array.shape, array.dtype, []

    def __getitem__(self, key):
        self.rows.extend(range(*key.indices(len(self.array))))
        return self.array[key]


def rank_epochs(n, world_size, batch_size, index=None, transform=None):
    """One epoch of rows ``1..n`` (row i holds i + 1, so a zero is a row not read) as each rank of ``world_size``
    sees it: per rank its batches, the disk rows it read and its generator's state afterwards."""
    out = []
    for rank in range(world_size):
        disk = CountingArray(np.arange(1, n + 1, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32))
        generator = torch.Generator().manual_seed(5)
        rows = LazyRows(DiskArray(disk), index)
        rows = rows if transform is None else rows.with_transform(transform(generator))
        batches = list(shuffled_batches(rows.subset(slice(None)).for_rank(rank, world_size), batch_size, generator))
        out.append((batches, disk.rows, generator.get_state()))
    return out


@pytest.mark.parametrize("n, world_size, batch_size", [(900, 2, 50), (900, 3, 64), (1000, 4, 7), (130, 2, 1000)])
def test_each_rank_reads_its_share_of_an_epoch_and_together_every_row_once(small_blocks, n, world_size, batch_size):
    """A distributed sampler over blocks: every rank gets the global batches of one process (sizes 50, ..., the
    rest), keeps only its slice of each (rank_slice), and has read from disk about 1/N of the rows; together the
    ranks train on every row once, and every rank's batch generator ends in the same state."""
    ranks = rank_epochs(n, world_size, batch_size)
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    trained = []
    for rank, (batches, read, state) in enumerate(ranks):
        assert [len(b) for b in batches] == sizes
        assert torch.equal(state, ranks[0][2])
        mine = torch.cat([rank_slice({"x": b, "num_data": n}, rank, world_size).get("x", b[:0]) for b in batches])[:, 0]
        assert bool((mine > 0).all())  # the slice rank_slice keeps is the rows this rank read
        others = torch.cat([torch.cat([b[:rank_share(len(b), rank, world_size).start], b[rank_share(len(b), rank, world_size).stop:]]) for b in batches])
        assert bool((others == 0).all())  # the rest was never read
        trained += mine.long().tolist()
        # read: its own rows, and at most a few rows either side of its piece that lay between rows it wanted
        assert set(mine.long().add(-1).tolist()) <= set(read)
        assert len(read) <= len(mine) + 2 * lazy.MAX_GAP, (len(read), len(mine))
        assert len(mine) == sum(len(range(len(b))[rank_share(len(b), rank, world_size)]) for b in batches)
        assert abs(len(mine) - n / world_size) <= len(batches)  # a share of a batch is B / N rows, give or take one
    assert sorted(trained) == list(range(1, n + 1))


def test_shards_keep_random_transforms_in_step_and_read_only_the_train_rows(small_blocks):
    """A transform that draws from the batch generator (dynamic binarization) sees the whole global batch on every
    rank, so the ranks' generators stay together; on a split's rows (700 of 1200, the gaps between read through)
    the two ranks together read what one process reads, give or take the rows at the edges of their pieces."""
    index = np.sort(np.random.default_rng(0).choice(1200, 700, replace=False))
    ranks = rank_epochs(1200, 2, 64, index=index, transform=lambda g: (lambda t: t + torch.rand(t.shape, generator=g)))
    assert torch.equal(ranks[0][2], ranks[1][2])
    alone = rank_epochs(1200, 1, 64, index=index)[0][1]
    assert set(index.tolist()) <= set(ranks[0][1]) | set(ranks[1][1])
    assert len(ranks[0][1]) + len(ranks[1][1]) <= len(alone) + 4 * lazy.MAX_GAP


def test_sharded_order_deals_whole_blocks_out():
    orders, pools, sizes = sharded_block_order(1000, 64, 2, 100, 3, torch.Generator().manual_seed(0))
    assert sizes == [100] * 10 and [len(o) for o in orders] == [330, 330, 340]
    assert sorted(torch.cat(orders).tolist()) == list(range(1000))
    for order in orders:  # a rank's rows lie in few blocks: whole blocks and at most two partial ones
        assert len(set((order // 64).tolist())) <= len(order) // 64 + 2


def test_labeled_rows_drawn_by_index_are_read_only_for_this_rank(small_blocks):
    disk = CountingArray(np.arange(1, 301, dtype=np.float32)[:, None])
    rows = LazyRows(DiskArray(disk))
    idx = torch.tensor([5, 250, 70, 180, 140])
    assert torch.equal(batch_rows(rows, idx), rows[idx])
    disk.rows.clear()
    batch = batch_rows(rows.for_rank(1, 2), idx)
    assert batch[:, 0].tolist() == [0, 0, 71, 181, 141]  # rank 1 of 2 reads the last 3 of 5 rows
    assert set(disk.rows) == {70, *range(140, 181)}  # 140 to 180 in one span


def test_no_batch_is_empty_when_a_pool_is_smaller_than_a_batch(small_blocks, monkeypatch):
    """Pools of 64 rows (1 block each) and batches of 100: every batch is full but the last (an earlier version
    yielded an empty batch whenever a pool ended on a batch boundary and the next pool was smaller than a batch)."""
    rows = LazyRows(DiskArray(np.arange(1, 641, dtype=np.float32)[:, None]))
    for pool_blocks in (1, 2, 16):
        monkeypatch.setattr(lazy, "POOL_BLOCKS", pool_blocks)
        batches = list(shuffled_batches(rows, 100, torch.Generator().manual_seed(0)))
        assert [len(b) for b in batches] == [100] * 6 + [40]
        assert sorted(torch.cat(batches)[:, 0].long().tolist()) == list(range(1, 641))


def test_in_memory_batches_keep_torch_randperm_order():
    x = torch.arange(100.0)[:, None]
    batches = list(shuffled_batches(x, 30, torch.Generator().manual_seed(3)))
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(3)).split(30)
    assert all(torch.equal(b[:, 0].long(), e) for b, e in zip(batches, expected))


@pytest.mark.parametrize("kind", ["npy", "h5", "zarr"])
def test_train_and_encode_round_trip_without_reading_it_whole(tmp_path, kind, small_blocks):
    x, y = arrays()
    spec = write(tmp_path, kind, x, y)
    model, summary = ppmodels.train("vae", spec, out=tmp_path / "run", train_config=TrainConfig(epochs=2, batch_size=64),
                                    model_options={"hidden": [16], "z_dim": 2}, progress=False)
    out = ppmodels.encode(tmp_path / "run", spec, tmp_path / "z.npz")
    in_memory = ppmodels.encode(tmp_path / "run", spec + ("&" if "?" in spec else "?") + "lazy=0", tmp_path / "z_mem.npz")
    with np.load(out) as z, np.load(in_memory) as z_mem:
        assert z["z_loc"].shape == (N, 2)
        assert_close_scaled(z["z_loc"], z_mem["z_loc"], rel=1e-5)
        assert_close_scaled(z["z_loc"], model.encode(x)[0], rel=1e-5)
    assert np.isfinite(summary["valid_elbo"])


def test_lazy_training_reproduces_with_a_seed(tmp_path, small_blocks):
    spec = write(tmp_path, "npy", arrays()[0])

    def weights(seed):
        model = ppmodels.fit(ppmodels.get_model_class("vae")(x_shape=[D], hidden=[8], z_dim=2, seed=0), load_dataset(spec),
                             TrainConfig(epochs=2, batch_size=50, seed=seed))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_score_and_diagnose_take_data_on_disk(tmp_path, small_blocks):
    x, y = arrays()
    spec = write(tmp_path, "zarr", x, y)
    ppmodels.train("vae", spec, out=tmp_path / "run", train_config=TrainConfig(epochs=1, batch_size=64),
                   model_options={"hidden": [16], "z_dim": 2}, progress=False)
    ppmodels.score(tmp_path / "run", spec, tmp_path / "scores.npz", num_particles=3, reference_size=50)
    with np.load(tmp_path / "scores.npz") as scores:
        assert scores["log_px"].shape == (N,) and np.isfinite(scores["log_px"]).all()
    from ppmodels.commands.diagnose import diagnose

    result = diagnose(tmp_path / "run", num_data=20, particles=25, report=False, predictive_draws=5)
    assert result["num_data"] == 20 and result["data"] == spec


def test_m2_and_evaluate_stream_labeled_data(tmp_path, small_blocks):
    x, y = arrays()
    spec = write(tmp_path, "h5", x, y)
    ppmodels.train("m2", spec, out=tmp_path / "m2", labels=30, train_config=TrainConfig(epochs=1, batch_size=64),
                   model_options={"hidden": [16], "z_dim": 2}, progress=False)
    result = ppmodels.evaluate(tmp_path / "m2", iw_samples=3)
    assert result["num_examples"] == 180 and 0 <= result["accuracy"] <= 1 and "svc" in result["baselines"]


def test_streaming_range_check_catches_a_bad_value_in_the_last_block(tmp_path, small_blocks):
    x, _ = arrays()
    x[-1, -1] = 2.0  # the last row of the last block leaves [0, 1]
    spec = write(tmp_path, "npy", x)
    assert load_dataset(spec).likelihood == "gaussian"
    dataset = load_dataset(spec + "?likelihood=bernoulli")
    dataset.splits["train"] = np.append(dataset.splits["train"], N - 1)  # make sure the bad row is a training row
    with pytest.raises(DataError, match="leaves \\[0, 1\\]"):
        ppmodels.fit(ppmodels.get_model_class("vae")(x_shape=[D], hidden=[8], z_dim=2), dataset, TrainConfig(epochs=1))
    x[-1, -1] = np.nan
    with pytest.raises(DataError, match="NaN or infinite values in 1 rows"):
        load_dataset(write(tmp_path, "npy", x))


def test_binarize_on_disk(tmp_path, small_blocks):
    spec = write(tmp_path, "npy", arrays()[0])
    fixed = load_dataset(spec, binarize="threshold")
    assert set(np.unique(fixed.split("train").x[:].numpy())) <= {0.0, 1.0} and fixed.likelihood == "bernoulli"
    dynamic = load_dataset(spec, binarize="dynamic").split("train")
    epoch = dynamic.epoch_x(torch.Generator().manual_seed(0))
    assert isinstance(epoch, LazyRows) and set(np.unique(epoch[:100].numpy())) <= {0.0, 1.0}


def test_bad_arrays_on_disk_are_refused_with_their_name(tmp_path):
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 3))
    with pytest.raises(DataError, match="'text' has non-numeric values"):
        load_dataset(f"npy:{tmp_path}/text.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    with pytest.raises(DataError, match="'empty' has shape"):
        load_dataset(f"npy:{tmp_path}/empty.npy")
