"""Video retrieval: per-video descriptors, the R@k protocol, FAISS indexes and queries.

Modules (each readable on its own):

* ``descriptors``: one descriptor per video ("mean" of clip features = baseline; SCALE "set",
  "refined", "set+mean"), centring and L2 normalisation. Importable without FAISS; the
  k-NN probe uses its ``l2_normalize``.
* ``evaluate``: the UCF101/HMDB51 protocol (VCOP/IIC/CoCLR convention): test-split queries vs
  train-split gallery, cosine similarity, R@k for k in 1, 5, 10, 20, 50 in percent. Centring
  is off by default (VCOP/IIC); ``center=True`` subtracts each split's own mean (CoCLR). The
  result states the protocol, counts every video, and carries store/model fingerprints.
* ``index``: FAISS index types (flat exact by default; ivf, hnsw, ivfpq) with their knobs and
  trade-offs, atomic save with a JSON sidecar, verified load.
* ``query``: ``build_gallery_index`` (gallery = every extracted video of the store, or the
  train part of one split) and ``query_index`` (by store video id, or by a video file decoded
  and embedded with the store's backbone and checkpoint, then through the SCALE model when
  the index was built with one).
* ``modes``: ``scale retrieve``'s three modes (evaluate, build an index, query) as functions,
  the rules for which flags go with which mode (``RetrieveTargets``) and the options that
  decide a run (``RetrieveOptions``, the defaults of its flags).
* ``models``: loading a SCALE model for retrieval, and its check against a store.

CLI: ``scale retrieve --store EVAL15.zarr [--split 1] [--model RUN] [--center] --json R.json``;
``scale retrieve --store EVAL15.zarr [--model RUN] --build-index G.faiss``;
``scale retrieve --index G.faiss --query VIDEO_FILE|VIDEO_ID --top 10``.
"""
from ..lazy_exports import lazy_exports

__all__ = ["BASELINE_KIND", "DESCRIPTOR_KINDS", "SCALE_KINDS", "descriptor_mean", "finalize_descriptors",
           "l2_normalize", "store_descriptors", "video_descriptors"]
# on first use: `scale retrieve --help` imports `modes` and `index` only
__getattr__, __dir__ = lazy_exports(__name__, {name: ".descriptors" for name in __all__})
