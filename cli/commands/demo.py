"""`scale demo`: the embedded end-to-end default."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text

from scale_toolkit.demo.run import DemoConfig
from scale_toolkit.demo.synthetic import CLASS_STORY, CLASSES

from ..app import CONFIG_OPTION, app, console, on_interrupt, out
from ..options import option_from
from ..text import safe, shown


def results_table(probes: dict, retrieval: dict, order_top1: dict[str, float]) -> Table:
    from scale_toolkit.probes import ROW_LABELS

    table = Table(title="synthetic demo, split 1 (test videos)")
    table.add_column("probe")
    table.add_column("top-1 %", justify="right")
    table.add_column("top-5 %", justify="right")
    table.add_column("top-1 %, order classes", justify="right")
    for row, res in probes.get("results", {}).items():
        order = f"{order_top1[row]:.1f}" if row in order_top1 else ""
        table.add_row(ROW_LABELS.get(row, row), f"{res['top1']:.1f}", f"{res['top5']:.1f}", order)
    for key, label in (("recall", "retrieval R@k, mean of clips"), ("scale_recall", "retrieval R@k, SCALE SET token")):
        if key in retrieval:
            table.add_row(label, "  ".join(f"R@{k} {v:.1f}" for k, v in retrieval[key].items()), "", "")
    return table


@app.command("demo")
def demo_cmd(
    out_dir: Path = option_from(DemoConfig, "out", "--out", help="Folder for the videos, stores, run, pictures (reused if it exists)."),
    seed: int = option_from(DemoConfig, "seed", "--seed", help="Seed of the synthetic data, clip sampling and training."),
    epochs: int = option_from(DemoConfig, "epochs", "--epochs", help="SCALE training epochs."),
    probe_epochs: int = option_from(DemoConfig, "probe_epochs", "--probe-epochs", help="Epochs of every trained probe."),
    videos_per_class: int = option_from(DemoConfig, "videos_per_class", "--videos-per-class", help=f"Synthetic videos per class ({len(CLASSES)} classes)."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Synthesise a small video dataset, extract, train SCALE, probe, retrieve, and draw the results."""
    from scale_toolkit.demo.run import run_demo

    on_interrupt(f"finished stages in {out_dir} are kept; rerun the same command to continue")

    def progress(stage: str, message: str) -> None:
        console.print(Text(stage, style="bold cyan"), Text(f": {safe(message)}"), sep="")

    report = run_demo(DemoConfig(out=out_dir, seed=seed, epochs=epochs, videos_per_class=videos_per_class, probe_epochs=probe_epochs), progress)
    out.print(results_table(report.probes, report.retrieval, report.order_top1))
    for line in CLASS_STORY:
        out.print(line)
    timing = Table(title="time per stage (s)")
    timing.add_column("stage")
    timing.add_column("seconds", justify="right")
    for stage, secs in report.seconds.items():
        timing.add_row(stage, f"{secs:.1f}")
    out.print(timing)
    for name, path in report.paths.items():
        out.print(f"{name}: {shown(path)}")
    out.print(f"browse and query the videos in a web page: scale serve --index {shown(report.paths['index'])}",
              highlight=False)
