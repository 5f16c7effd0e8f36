"""The bottom layer: what passes between scale's stages on disk, as small typed descriptions.

Each module describes one artefact - where its files lie, how its small JSON parts read and write
(frozen dataclasses with ``to_json`` / ``from_json``), and ``is_ours(path)``: whether a path holds
that artefact as scale wrote it. ``scale_toolkit/ownership.py`` asks these; the stages that write
the artefacts use the same names, so a layout is defined once.

Nothing here imports torch, zarr, faiss or any other module of scale (an import-linter contract
in pyproject.toml keeps it so): every layer above may import it, the CLI's `--help` included.

    store.py     a feature store (a Zarr group whose attributes carry scale's schema_version)
    run.py       a `scale train` run directory and its file names
    index.py     a retrieval index: INDEX, its sidecar INDEX.json, its media folder INDEX.media/
    export.py    a `scale export` .npz / .h5
    result.py    a `--json` result document (marked with the command that wrote it)
    probe_result.py  the body of `scale probe`'s: ProbeResult, what either probe protocol returns
    picture.py   a PNG scale drew

Besides the artefacts on disk, what crosses stages in memory and the CLI reads before torch:

    progress.py  the progress events train() and run_extraction() send (TrainEvent, ExtractEvent)
    extract.py   ExtractConfig, what `scale extract` asks run_extraction to do
"""
