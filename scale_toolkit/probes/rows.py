"""The probe rows, one declaration each: the result key, the table label, the `scale probe` flag that
selects it, what it reads and how it runs.

Everything else about rows derives from ``REGISTRY``: the paper's order, the default rows, the
flags of `scale probe` (cli/commands/probe.py builds its row switches from here), which rows need
a model, which load every clip and which stream a vector per video, which run on ragged stores,
which rows each protocol runs, and the protocol's words. A row's function (its per-video vector,
its per-clip inputs or its set classifier) is registered under the row's name in
``row_functions.py``, the one of that module's tables its ``method`` names.

Adding a row is one ``ProbeRow`` here plus its function there. A trained row (``clip_head`` or
``set_classifier``) also takes its hyper-parameter grid from ``grid.PRESETS``.

Torch-free: `scale probe --help` reads this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["knn", "clip_head", "set_classifier"]  # how a row runs (protocol.py's StandardRunner)
Reads = Literal["video_means", "clips"]
Model = Literal["", "frozen", "finetuned"]


@dataclass(frozen=True)
class ProbeRow:
    """One row of the probe table."""

    name: str  # the key in the result document
    label: str  # the table's label
    flag: str  # the `scale probe` flag that selects it; rows sharing a flag come together
    method: Method  # knn: a k-NN vote over one vector per video; clip_head: a head per clip, softmax
    #                 averaged; set_classifier: a SCALE architecture over the clip set, trained
    reads: Reads  # video_means: a vector per video, streamed from the store; clips: every clip, resident
    model: Model = ""  # frozen: reads the trained SCALE model's SET token / refined clips; finetuned: trains it
    ragged: bool = False  # runs on a store of videos of any length (a vector per video, or sets of K clips)
    default: bool = False  # run when no row flag is given
    paper: bool = False  # a row of the paper's table (the demo runs them all)
    protocols: tuple[str, ...] = ("standard", "official")
    head: Literal["", "linear", "mlp"] = ""  # clip heads: the head on each clip
    flag_help: str = ""  # the flag's help, given by the first row of a flag
    text: str = ""  # a sentence for the protocol's words when the row runs ("" for the paper's rows)

    @property
    def needs_model(self) -> bool:
        return bool(self.model)

    @property
    def trained(self) -> bool:
        return self.method != "knn"


REGISTRY: tuple[ProbeRow, ...] = (  # the paper's order: the table's and the result document's
    ProbeRow("knn", "k-NN", "--knn", "knn", "video_means", ragged=True, default=True, paper=True,
             flag_help="k-NN probe with these k (e.g. 20 or 10,20; the first is the table's row)."),
    ProbeRow("scale_knn", "SCALE_kNN", "--knn", "knn", "video_means", model="frozen", ragged=True, default=True,
             paper=True),
    ProbeRow("knn_median", "k-NN median", "--knn-median", "knn", "clips", protocols=("standard",),
             flag_help="k-NN probe on the element-wise median of each video's clip features (an outlier clip "
                       "cannot move it); k from --knn.",
             text="k-NN median feature = element-wise median of the {n_clips} clip features."),
    ProbeRow("linear", "Linear", "--linear", "clip_head", "clips", ragged=True, default=True, paper=True,
             head="linear", flag_help="Linear probe (and SCALE_linear with --model)."),
    ProbeRow("scale_linear", "SCALE_linear", "--linear", "clip_head", "clips", model="frozen", ragged=True,
             default=True, paper=True, head="linear"),
    ProbeRow("mlp", "MLP", "--mlp", "clip_head", "clips", ragged=True, paper=True, head="mlp",
             flag_help="MLP probe on frozen clip features."),
    ProbeRow("transformer", "Transformer", "--transformer", "set_classifier", "clips", ragged=True, paper=True,
             flag_help="The SCALE architecture from random init, trained supervised."),
    ProbeRow("scale_ft", "SCALE_ft", "--ft", "set_classifier", "clips", model="finetuned", ragged=True, paper=True,
             flag_help="SCALE_ft: fine-tune the --model predictor with a linear head."),
)

ROW: dict[str, ProbeRow] = {row.name: row for row in REGISTRY}
ROWS: tuple[str, ...] = tuple(ROW)
ROW_LABELS: dict[str, str] = {row.name: row.label for row in REGISTRY}
PAPER_ROWS: tuple[str, ...] = tuple(row.name for row in REGISTRY if row.paper)


def rows_of(rows: list[str], method: str) -> list[str]:
    """The rows of ``rows`` that run by ``method``.

    >>> rows_of(["knn", "linear", "mlp"], "clip_head")
    ['linear', 'mlp']
    """
    return [row for row in rows if ROW[row].method == method]


def row_flags() -> dict[str, list[ProbeRow]]:
    """Each `scale probe` row flag and the rows it selects, in the paper's order.

    >>> {flag: [row.name for row in rows] for flag, rows in row_flags().items()}["--knn"]
    ['knn', 'scale_knn']
    """
    flags: dict[str, list[ProbeRow]] = {}
    for row in REGISTRY:
        flags.setdefault(row.flag, []).append(row)
    return flags


def flag_parameter(flag: str) -> str:
    """The keyword a row flag arrives as (`rows_for`, `probe_request`, the CLI's parameter).

    >>> flag_parameter("--ft"), flag_parameter("--knn-median")
    ('ft', 'knn_median')
    """
    return flag.lstrip("-").replace("-", "_")
