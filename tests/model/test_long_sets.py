"""A long video embedded over interleaved sets of K clips in time order (model/long_sets.py)."""
import numpy as np
import pytest
import torch

from scale_toolkit.model import ScaleConfig, ScaleModel
from scale_toolkit.model.long_sets import encode_in_sets, interleaved_subsets
from tests.train.helpers import TINY_MODEL


@pytest.mark.parametrize("count", [1, 7, 8, 9, 15, 16, 17, 100, 361, 2000])
def test_subsets_are_k_distinct_clips_spread_over_the_video_and_cover_every_clip(count):
    k = 8
    subsets = interleaved_subsets(count, k)
    if count <= k:
        assert subsets.tolist() == [list(range(count))]
        return
    assert subsets.shape == (-(-count // k), k)
    assert (np.diff(subsets, axis=1) > 0).all()  # K distinct clips, in time order
    assert set(subsets.ravel().tolist()) == set(range(count))  # every clip is used
    # each subset spans the whole video: its j-th clip lies in the j-th K-th of it
    j = np.arange(k)[None]
    assert (subsets >= j * count // k).all() and (subsets * k < (j + 1) * count).all()


def test_padded_shuffled_videos_equal_the_hand_computed_mean_of_per_subset_forwards():
    torch.manual_seed(0)
    model = ScaleModel(ScaleConfig(**TINY_MODEL, input_dim=8, set_size=4)).eval()
    counts = [3, 4, 11, 30]
    width = max(counts)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((len(counts), width, 8)).astype(np.float32)
    coords = rng.random((len(counts), width, 6)).astype(np.float32)
    valid = np.arange(width)[None] < np.array(counts)[:, None]
    feats[~valid] = 1e3  # whatever the padding holds is never read
    out = encode_in_sets(model, torch.from_numpy(feats), torch.from_numpy(coords), coords[..., 2], valid, batch_sets=3)
    for b, n in enumerate(counts):
        order = np.argsort(coords[b, :n, 2])  # the clips are stored out of time order
        sets, refined, hits = [], np.zeros((width, model.config.hidden)), np.zeros(width)
        for subset in interleaved_subsets(n, 4):
            slots = order[subset]
            alone = model.encode(torch.from_numpy(feats[b, slots])[None], torch.from_numpy(coords[b, slots])[None])
            sets.append(alone["set_token"][0].numpy())
            refined[slots] += alone["refined"][0].numpy()
            hits[slots] += 1
        np.testing.assert_allclose(out["set_token"][b].numpy(), np.mean(sets, 0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["refined"][b, :n].numpy(), refined[:n] / hits[:n, None], rtol=1e-5, atol=1e-5)
        assert not out["refined"][b, n:].any()
    again = encode_in_sets(model, torch.from_numpy(feats), torch.from_numpy(coords), coords[..., 2], valid, batch_sets=3)
    assert torch.equal(again["set_token"], out["set_token"])  # no seed: the same numbers every time
    other = encode_in_sets(model, torch.from_numpy(feats), torch.from_numpy(coords), coords[..., 2], valid)
    torch.testing.assert_close(other["set_token"], out["set_token"])  # other batches: the same up to rounding
