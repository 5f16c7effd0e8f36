import torch

from scale_toolkit.probes.fit import ClipTable, TrainSetting, fit_clip_heads, predict_clip_head
from scale_toolkit.probes.linear import linear_head
from scale_toolkit.probes.mlp import mlp_head


def _data(n=40, v=5, d=6, c=3):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, v, d, generator=g).half()
    per_video = torch.randn(n, 4, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    return feats, per_video, labels


def test_clip_table_concatenates_clip_and_video_parts():
    feats, per_video, _ = _data()
    for limit in (0, 1 << 30):  # assembled per batch, and materialised
        t = ClipTable([feats, per_video], materialize_bytes=limit)
        assert (t.flat is None) == (limit == 0)
        x = t.clips(torch.tensor([0, 5 * 7 + 3]))
        torch.testing.assert_close(x[1], torch.cat([feats[7, 3].float(), per_video[7]]))
        torch.testing.assert_close(t.videos(torch.tensor([7]))[0, 3], x[1])


def test_heads_trained_together_equal_heads_trained_alone():
    """The grid trick (several heads per pass, one matmul) is exactly independent training."""
    feats, per_video, labels = _data()
    table = ClipTable([feats, per_video])
    pairs = [(1e-2, 0.0), (3e-3, 0.05), (1e-3, 1e-4)]
    for make, st in ((lambda: linear_head(table.dim, 3, batchnorm=True), TrainSetting(0, 0, batch_size=16, epochs=4)),
                     (lambda: mlp_head(table.dim, 3, hidden=8), TrainSetting(0, 0, batch_size=100, epochs=5, optimizer="sgd"))):
        torch.manual_seed(1)
        together = [make() for _ in pairs]
        alone = [make() for _ in pairs]
        for a, b in zip(alone, together):
            a.load_state_dict(b.state_dict())
        fit_clip_heads(table, labels, together, pairs, st, seed=3)
        for head, pair in zip(alone, pairs):
            fit_clip_heads(table, labels, [head], [pair], st, seed=3)
        for a, b in zip(alone, together):
            for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
                torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5, msg=name)
            torch.testing.assert_close(torch.as_tensor(predict_clip_head(a, table)), torch.as_tensor(predict_clip_head(b, table)))


def test_full_batch_batchnorm_uses_training_statistics():
    feats, _, labels = _data()
    table = ClipTable([feats])
    head = linear_head(table.dim, 3, batchnorm=True)
    fit_clip_heads(table, labels, [head], [(1e-2, 0.0)], TrainSetting(0, 0, batch_size=10_000, epochs=3), seed=0)
    torch.testing.assert_close(head[0].running_mean, table.flat.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(head[0].running_var, table.flat.var(0), rtol=1e-4, atol=1e-5)


def test_a_diverged_head_stops_and_the_others_train_on_unchanged():
    """Early stopping only where it cannot change the selection: a head whose loss is not finite is
    NaN (it ranks last, as it would have) and leaves the batch; the other heads are unaffected."""
    feats, _, labels = _data()
    table = ClipTable([feats])
    pairs = [(1e-2, 0.0), (1e30, 0.0), (3e-3, 1e-4)]  # the middle one overflows on its first steps
    st = TrainSetting(0, 0, batch_size=16, epochs=6, optimizer="sgd")
    torch.manual_seed(2)
    heads = [mlp_head(table.dim, 3, hidden=8) for _ in pairs]
    alone = [mlp_head(table.dim, 3, hidden=8) for _ in pairs]
    for a, b in zip(alone, heads):
        a.load_state_dict(b.state_dict())
    steps = []
    fit_clip_heads(table, labels, heads, pairs, st, seed=1, progress=lambda task, done, total: steps.append(done))
    assert all(torch.isnan(p).all() for p in heads[1].parameters())
    assert steps[-1] == 6 * 3  # the finite heads ran every step (40 videos in batches of 16: 3 per epoch)
    for i in (0, 2):
        fit_clip_heads(table, labels, [alone[i]], [pairs[i]], st, seed=1)
        for pa, pb in zip(alone[i].parameters(), heads[i].parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    doomed = [mlp_head(table.dim, 3, hidden=8)]
    steps.clear()
    fit_clip_heads(table, labels, doomed, [(1e30, 0.0)], st, seed=1, progress=lambda task, done, total: steps.append(done))
    assert steps and steps[-1] < 6 * 3 and all(torch.isnan(p).all() for p in doomed[0].parameters())


def test_a_table_of_view_rows_trains_as_a_materialised_copy_of_those_rows():
    """Above its size limit a table gathers its rows from the view's float16 tensors per batch
    (no copy of the split); the heads it trains match those trained on a float32 copy."""
    feats, per_video, labels = _data(n=60)
    rows = torch.tensor([5, 2, 40, 41, 7, 9, 59, 0, 33, 12, 18, 27])
    lazy = ClipTable([feats, per_video], rows=rows, materialize_bytes=0)
    copied = ClipTable([feats[rows], per_video[rows]])
    assert lazy.flat is None and copied.flat is not None
    torch.testing.assert_close(lazy.mean_square(videos_per_piece=5), copied.mean_square())
    setting = TrainSetting(0, 0, batch_size=4, epochs=3)
    heads = []
    for table in (lazy, copied):
        torch.manual_seed(4)
        head = linear_head(table.dim, 3)  # InputScale in front: fitted from the table's mean square
        fit_clip_heads(table, labels[rows], [head], [(1e-2, 1e-4)], setting, seed=5)
        heads.append(head)
    for (name, a), b in zip(heads[0].state_dict().items(), heads[1].state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    torch.testing.assert_close(torch.as_tensor(predict_clip_head(heads[0], lazy)),
                               torch.as_tensor(predict_clip_head(heads[1], copied)))


def test_a_table_streamed_from_the_store_gives_every_clip_once_in_the_same_batches(tmp_path):
    """A table whose clips stay in the store (over the memory budget) reads a window of videos at a
    time and still yields, per epoch, every clip once, in as many batches of the same sizes as the
    in-memory table (the last batch of one clip dropped the same way), with the same values."""
    import numpy as np

    from scale_toolkit.probes.data import StoreClips
    from scale_toolkit.probes.fit import shuffled_batches
    from scale_toolkit.store import FeatureStore

    n, clips, dim = 40, 4, 6
    feats = np.random.default_rng(0).standard_normal((n, clips, dim)).astype(np.float16)
    fs = FeatureStore.create(tmp_path / "s.zarr", video_ids=[f"v{i}" for i in range(n)], labels=np.zeros(n, int),
                             splits=np.ones((3, n), np.int8), class_names=["a"], n_clips=clips, feature_dim=dim,
                             rows_per_chunk=4)
    fs.write_rows(np.arange(n), features=feats, coords=np.zeros((n, clips, 6), np.float32))
    rows_here = np.arange(n)
    table_rows = torch.as_tensor(np.random.default_rng(1).permutation(n)[:30])  # 30 videos, any order
    per_video = torch.randn(n, 2)
    stored = ClipTable([StoreClips(FeatureStore.open(tmp_path / "s.zarr"), rows_here, 6, torch.device("cpu")), per_video],
                       rows=table_rows)
    held = ClipTable([torch.from_numpy(feats), per_video], rows=table_rows, materialize_bytes=0)
    assert stored.flat is None and stored.stored is not None
    for batch in (7, 13, 200):  # 120 clips: 17 batches + a dropped one; 9 + 3; one batch of all
        sizes = [len(i) for i in shuffled_batches(120, batch, torch.Generator().manual_seed(0), torch.device("cpu"))]
        got = list(stored.batches(batch, torch.Generator().manual_seed(0)))
        assert [len(i) for _, i in got] == sizes
        seen = torch.cat([i for _, i in got])
        assert len(set(seen.tolist())) == len(seen) == sum(sizes)
        for x, idx in got:
            assert torch.equal(x, held.clips(idx))
