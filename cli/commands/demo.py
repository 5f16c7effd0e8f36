"""`scale demo`: the embedded end-to-end default."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from rich.table import Table
from rich.text import Text

from scale_toolkit.demo.run import DemoConfig
from scale_toolkit.demo.synthetic import CLASS_STORY, CLASSES
from scale_toolkit.probes.rows import ROW_LABELS

from ..app import CONFIG_OPTION, app, console, on_interrupt, out
from ..options import option_from
from ..text import safe, shown


def results_table(probes: dict, retrieval: dict, order_top1: dict[str, float]) -> Table:
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


def scale_command(path_env: str | None = None, cwd: Path | None = None) -> str:
    """`scale` as the user's shell can run it: the bare name where PATH finds this very install's
    script, else the script's path (`.venv/bin/scale` from the folder that holds the venv, else absolute).
    A venv that is not activated has its script off PATH: `make demo` runs `.venv/bin/scale`."""
    script = Path(sys.executable).parent / "scale"
    if not script.exists():  # run as `python -m cli.main` from a checkout without the console script
        return f"{shlex.quote(sys.executable)} -m cli.main"
    found = shutil.which("scale", path=os.environ.get("PATH", "") if path_env is None else path_env)
    if found and os.path.samefile(found, script):
        return "scale"
    try:  # the checkout's own venv, seen from the checkout: .venv/bin/scale
        relative = script.absolute().relative_to((cwd or Path.cwd()).absolute())
    except ValueError:
        relative = None
    if relative is not None and len(relative.parts) == 3:
        return shlex.quote(relative.as_posix())
    return shlex.quote(str(script.absolute()))


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
    # a command the user's shell runs as printed (issue #30: bare `scale` is off PATH until the venv is activated)
    out.print(f"browse and query the videos in a web page: {scale_command()} serve --index "
              f"{shlex.quote(shown(report.paths['index']))}", highlight=False, soft_wrap=True)
