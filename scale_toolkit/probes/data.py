"""What the probes read: stores loaded once onto the device, the check that two stores go together, embeddings.

A *view* is one store's arrays on the device (clip features, coords and, with a model, the refined
clip features and the SET token). The eval store gives the eval view (every video, eval15 clips);
`--train-store` gives a second view for the train videos (e.g. the 16 augmented clips). Rows are
always named by their index in the eval store; a view maps them to its own rows by video id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import torch

from ..errors import ScaleError
from ..model.positions import model_positions
from ..store import DONE, FeatureStore
from ..store.attributes import StoreAttrs

if TYPE_CHECKING:
    from ..model import ScaleModel

# backbone families / names whose features want BatchNorm without affine in front of the probe
MAE_FAMILIES = ("video_vit", "videomae", "cvmae", "crossvideomae", "mae", "mae_st", "mam2", "vic_mae", "vicmae")


def is_mae_family(attrs: StoreAttrs) -> bool:
    """True for MAE-derived backbones (VideoMAE, CrossVideoMAE, MAE-ST, MAM², ViC-MAE).

    >>> is_mae_family(StoreAttrs(backbone={"name": "rhobyol", "family": "slow_r50"}))
    False
    >>> is_mae_family(StoreAttrs(backbone={"name": "cvmae", "family": "video_vit"}))
    True
    """
    family = str(attrs.backbone.get("family", "")).lower()
    name = str(attrs.backbone.get("name", "")).lower()
    return family in MAE_FAMILIES or "mae" in name or "mam2" in name


def check_compatible(store: FeatureStore, other: FeatureStore, what: str = "--train-store") -> None:
    """Two stores can be used together: same feature dim, backbone, checkpoint and classes."""
    if store.feature_dim != other.feature_dim:
        raise ScaleError(f"{what} {other.path} has {other.feature_dim}-d features but {store.path} has "
                         f"{store.feature_dim}-d; use stores extracted with the same backbone")
    mine, theirs = StoreAttrs.of(store), StoreAttrs.of(other)
    if mine.spec_name and theirs.spec_name and mine.spec_name != theirs.spec_name:
        raise ScaleError(f"{what} {other.path} was extracted with backbone {theirs.spec_name!r} but {store.path} "
                         f"with {mine.spec_name!r}; use stores of the same backbone")
    mine_sha, their_sha = mine.checkpoint_sha256, theirs.checkpoint_sha256
    if mine_sha and their_sha and mine_sha != their_sha:
        raise ScaleError(f"{what} {other.path} and {store.path} come from different checkpoints "
                         f"({their_sha[:12]} vs {mine_sha[:12]}); extract both with the same checkpoint")
    if store.class_names and other.class_names and store.class_names != other.class_names:
        raise ScaleError(f"{what} {other.path} and {store.path} have different class lists; "
                         "use stores of the same dataset")


@dataclass
class View:
    """One store's arrays on the device, and the map from eval-store rows to this store's rows."""

    features: torch.Tensor  # float16 [N, V, D]
    coords: torch.Tensor  # float32 [N, V, 6]
    row_of: np.ndarray  # eval-store row -> row here (-1 where absent / not done)
    set_token: Optional[torch.Tensor] = None  # float32 [N, H]
    refined: Optional[torch.Tensor] = None  # float16 [N, V, H]
    extra: dict[str, Any] = field(default_factory=dict)
    flip: Optional[np.ndarray] = None  # bool [N, V] (host): the official 7-entry positions need it
    valid: Optional[torch.Tensor] = None  # bool [N, V]: clip slots holding a clip (a ragged store's); None: all
    clips: Optional["FlatClips"] = None  # every clip of each video unpadded: what set classifiers read on a ragged store

    def positions(self, pos_input: str) -> torch.Tensor:
        """What a model with ``pos_input`` reads: the coords, or the official 7-entry vectors (built once)."""
        if pos_input == "eq5":
            return self.coords
        if pos_input not in self.extra:
            pos = model_positions(pos_input, self.coords.cpu().numpy(), self.flip)
            self.extra[pos_input] = torch.from_numpy(pos).to(self.coords.device)
        return self.extra[pos_input]

    def rows(self, eval_rows: np.ndarray) -> torch.Tensor:
        """This view's rows of some eval-store rows, as an index tensor on the device."""
        rows_here = self.row_of[np.asarray(eval_rows, dtype=np.int64)]
        if (rows_here < 0).any():
            raise ValueError("some rows are absent from this view")
        return torch.as_tensor(rows_here, dtype=torch.long, device=self.features.device)


class StoreClips:
    """A view's clip features left in the store: `[N, V, D]` float16 by view row, read when indexed.

    What a probe holds instead of every clip when they are over the memory budget: indexing by
    view rows (a tensor, an array or a slice) reads just those videos' blocks, in the order asked.
    Clip heads stream it a window of videos at a time (`ClipTable.batches`); the k-NN means and
    predictions read it in pieces of videos.
    """

    def __init__(self, store: FeatureStore, rows_here: np.ndarray, window_videos: int, device: torch.device) -> None:
        self.store, self.rows_here, self.device = store, rows_here, device
        self.shape = (len(rows_here), store.n_clips, store.feature_dim)
        self.window_videos = max(1, int(window_videos))  # videos a streamed epoch holds at once

    def dim(self) -> int:
        return 3

    def __getitem__(self, rows: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        if isinstance(rows, slice):
            rows = np.arange(self.shape[0])[rows]
        rows = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise TypeError("StoreClips reads whole videos: index it by a 1-D set of rows")
        feats = self.store.read(self.rows_here[rows], names=("features",))["features"]
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float16)).to(self.device)


def load_streamed_view(store: FeatureStore, device: torch.device, budget: int, eval_store: Optional[FeatureStore] = None,
                       wanted: Optional[np.ndarray] = None, model: Optional[ScaleModel] = None) -> View:
    """A view whose clips stay in the store (`StoreClips`), for probes over the memory budget: with a
    model it holds per video the SET token and mean refined clip (one pass over the store, as
    `load_mean_view` computes them). A streamed epoch holds a window of videos whose float16 clips,
    their float32 form and the batch being built fit half the budget."""
    rows_here, row_of = view_rows(store, eval_store, wanted)
    per_video = store.n_clips * store.feature_dim * (2 + 4 + 4)
    no_coords = torch.zeros((0, store.n_clips, 6), device=device)  # no set classifier reads a streamed view
    view = View(features=StoreClips(store, rows_here, budget // 2 // per_video, device),  # type: ignore[arg-type]
                coords=no_coords, row_of=row_of)
    if model is not None:
        embedded = load_mean_view(store, device, eval_store, wanted, model)
        view.set_token, view.refined = embedded.set_token, embedded.refined  # refined: the mean clip [N, 1, H]
    return view


@dataclass
class FlatClips:
    """Every clip of a view's videos, concatenated without padding, and where each video's clips are."""

    features: torch.Tensor  # float16 [C, D]
    coords: torch.Tensor  # float32 [C, 6]
    offsets: torch.Tensor  # int64 [N]: the first clip of each view row
    counts: torch.Tensor  # int64 [N]

    @classmethod
    def nbytes(cls, store: FeatureStore, rows: np.ndarray) -> int:
        """What holding the clips of `rows` takes (float16 features, float32 coords)."""
        counts = getattr(store, "clip_counts", None)
        n_clips = int(counts[rows].sum()) if counts is not None else len(rows) * store.n_clips
        return n_clips * store.clip_bytes(("features", "coords"))


def load_flat_clips(store: FeatureStore, device: torch.device, eval_store: Optional[FeatureStore] = None,
                    wanted: Optional[np.ndarray] = None) -> FlatClips:
    """The clips of the view rows (`load_view`'s rows, in the same order) as `FlatClips`: a ragged
    store's as stored, a fixed-count store's V clips a video."""
    rows_here, _ = view_rows(store, eval_store, wanted)
    if getattr(store, "clip_counts", None) is not None:
        data, counts = store.read_clips(rows_here, ("features", "coords"))
    else:
        data = store.read(rows_here, names=("features", "coords"))
        data = {name: data[name].reshape(-1, *data[name].shape[2:]) for name in ("features", "coords")}
        counts = np.full(len(rows_here), store.n_clips)
    counts = np.asarray(counts, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return FlatClips(torch.from_numpy(np.ascontiguousarray(data["features"], dtype=np.float16)).to(device),
                     torch.from_numpy(np.ascontiguousarray(data["coords"], dtype=np.float32)).to(device),
                     torch.from_numpy(offsets).to(device), torch.from_numpy(counts).to(device))


def load_view(store: FeatureStore, device: torch.device, eval_store: Optional[FeatureStore] = None,
              wanted: Optional[np.ndarray] = None) -> View:
    """Read the done rows of `store` onto `device` (features stay float16): only those of the eval-store
    rows `wanted` (the probes' train and test videos) when given, every done row otherwise. Videos
    the probes never use (unused, pending, other splits) are not read."""
    rows_here, row_of = view_rows(store, eval_store, wanted)
    data = store.read(rows_here, names=("features", "coords", "flip"))
    return View(
        features=torch.from_numpy(np.ascontiguousarray(data["features"], dtype=np.float16)).to(device),
        coords=torch.from_numpy(np.ascontiguousarray(data["coords"], dtype=np.float32)).to(device),
        row_of=row_of,
        flip=np.asarray(data["flip"], dtype=bool),
    )


def load_mean_view(store: FeatureStore, device: torch.device, eval_store: Optional[FeatureStore] = None,
                   wanted: Optional[np.ndarray] = None, model: Optional[ScaleModel] = None,
                   batch_videos: int = 256) -> View:
    """What the k-NN rows read, streamed from the store: per video the mean clip feature (and with a
    model the SET token and the mean refined clip), computed `batch_videos` at a time exactly as
    `load_view` + `embed_view` + `clip_mean` compute them, so the numbers are the same while memory
    holds a vector per video instead of every clip. Means are kept as one "clip" [N, 1, D] float32.
    A ragged store's videos (any length) are embedded over interleaved sets of K clips instead of one
    forward over all their clips (`embed_in_sets`, model/long_sets.py)."""
    rows_here, row_of = view_rows(store, eval_store, wanted)
    names = ("features", "coords", "flip") if model is not None else ("features",)
    means, sets, refined = [], [], []
    for piece_rows in _pieces(store, rows_here, batch_videos):
        data = store.read(piece_rows, names=names)
        feats = torch.from_numpy(np.ascontiguousarray(data["features"], dtype=np.float16)).to(device)
        valid = torch.from_numpy(data["valid"]).to(device) if "valid" in data else None  # a ragged store's
        # host copies of the small results: small torch tensors kept between the pieces' large
        # temporaries fragment glibc's heap (measured: RSS grew by every piece's float32 copy)
        means.append(_host(masked_mean(feats.float(), valid)))
        if model is not None:
            piece = View(feats, torch.from_numpy(np.ascontiguousarray(data["coords"], dtype=np.float32)).to(device),
                         row_of, flip=np.asarray(data["flip"], dtype=bool), valid=valid)
            if valid is None:
                embed_view(piece, model, batch_videos)
            else:  # videos of any length: over sets of K clips, as the model was trained (model/long_sets.py)
                embed_in_sets(piece, model, np.asarray(data["coords"])[..., 2], np.asarray(data["valid"], bool))
            assert piece.set_token is not None and piece.refined is not None  # just embedded
            sets.append(_host(piece.set_token))
            refined.append(_host(masked_mean(piece.refined.float(), valid)))

    def joined(parts: list[np.ndarray], dim: int) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)).to(device)

    mean = joined(means, store.feature_dim)
    view = View(features=mean[:, None, :], coords=torch.zeros((len(mean), 1, 6), device=device), row_of=row_of)
    if model is not None:
        view.set_token = joined(sets, 0)
        view.refined = joined(refined, 0)[:, None, :]
    return view


def masked_mean(x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over clips [n, V, H] -> [n, H], over the valid clips only when `valid` [n, V] is given."""
    if valid is None:
        return x.mean(1)
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def _pieces(store: FeatureStore, rows: np.ndarray, batch_videos: int):
    """The store rows in pieces read together: `batch_videos` at a time, or for a ragged store
    (videos of any length) pieces whose padded clips and attention stay within budget."""
    if getattr(store, "clip_counts", None) is None:
        return (rows[start:start + batch_videos] for start in range(0, len(rows), batch_videos))
    from ..store.ragged import padded_pieces

    return (rows[piece] for piece in padded_pieces(store.clip_counts[rows], batch_videos))


def _host(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


def view_rows(store: FeatureStore, eval_store: Optional[FeatureStore], wanted: Optional[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(the store rows a view reads, in store order; eval-store row -> position in the view or -1)."""
    done = store.status == DONE
    eval_rows_of_store = np.arange(store.n_videos)  # eval-store row -> its row here (eval store: itself)
    if eval_store is not None:
        found = (store.row_of(vid) for vid in eval_store.video_ids)
        eval_rows_of_store = np.array([-1 if row is None else row for row in found], dtype=np.int64)
    usable = (eval_rows_of_store >= 0) & done[np.maximum(eval_rows_of_store, 0)]
    if wanted is not None:
        keep = np.zeros(len(usable), bool)
        keep[np.asarray(wanted, dtype=np.int64)] = True
        usable &= keep
    rows_here = eval_rows_of_store[usable]
    order = np.argsort(rows_here, kind="stable")  # the store is read in row order, once
    row_of = np.full(len(usable), -1, dtype=np.int64)
    row_of[np.flatnonzero(usable)[order]] = np.arange(len(rows_here))
    return rows_here[order], row_of


def clip_reduce(features: torch.Tensor, idx: torch.Tensor, reduce: Callable[[torch.Tensor], np.ndarray],
                rows: int = 2048) -> np.ndarray:
    """`reduce` of each video's float32 clips, `features[idx]` [n, V, D] -> [n, D] float32, computed in
    pieces of `rows` videos (at most a streamed view's window): never a float32 copy of every video's
    clips at once."""
    rows = min(rows, getattr(features, "window_videos", rows))
    parts = [np.asarray(reduce(features[idx[start:start + rows]].float()), dtype=np.float32)
             for start in range(0, len(idx), rows)]
    return np.concatenate(parts) if parts else np.zeros((0, features.shape[-1]), np.float32)


def clip_mean(features: torch.Tensor, idx: torch.Tensor, rows: int = 2048) -> np.ndarray:
    """The float32 mean over clips of `features[idx]` [n, V, D] -> [n, D] (`clip_reduce`)."""
    return clip_reduce(features, idx, lambda x: _host(x.mean(1)), rows)


def embed_in_sets(view: View, model: ScaleModel, times: np.ndarray, valid: np.ndarray) -> None:
    """Fill `view.set_token` and `view.refined` of padded videos of any length from forwards over
    interleaved sets of K clips in time order (`times` [N, V] start times, `valid` [N, V] host arrays)."""
    from ..model.long_sets import encode_in_sets

    model.to(view.features.device)
    out = encode_in_sets(model, view.features, view.positions(model.config.pos_input), times, valid)
    view.set_token = out["set_token"]
    view.refined = out["refined"].to(torch.float16)


@torch.no_grad()
def embed_view(view: View, model: ScaleModel, batch_videos: int = 256) -> None:
    """Fill `view.set_token` [N, H] and `view.refined` [N, V, H] with the model's embeddings."""
    model.eval()
    model.to(view.features.device)
    sets, refined = [], []
    positions = view.positions(model.config.pos_input)
    for start in range(0, view.features.shape[0], batch_videos):
        batch = slice(start, start + batch_videos)
        out = model(view.features[batch].float(), positions[batch].float(),
                    valid=None if view.valid is None else view.valid[batch])
        sets.append(out["set_token"].float())
        refined.append(out["refined"].to(torch.float16))
    view.set_token = torch.cat(sets)
    view.refined = torch.cat(refined)
