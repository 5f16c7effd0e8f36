"""Subprocess for test_signals: runs the real `scale` CLI with one point made observable and slow,
so a test can send a real signal while the command is mid-work (no timing guesses).

argv: MODE MARKER SCALE_ARGS..., MODE one of
  extract  after each written block: touch MARKER, then wait (the signal lands between blocks)
  train    after each checkpoint_last.pt: touch MARKER, then wait
  probe    at the first progress report of the probes: touch MARKER, then wait
  import   after the rows are written into the hidden store: touch MARKER, then wait
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def _pause(marker: Path) -> None:
    marker.touch()
    time.sleep(600)  # interrupted by the test's signal


def main() -> None:
    mode, marker, args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if mode == "extract":
        from scale_toolkit.store import FeatureStore

        real = FeatureStore.write_block

        def write_block(self, block, results):
            real(self, block, results)
            _pause(marker)
        FeatureStore.write_block = write_block
    elif mode == "train":
        import scale_toolkit.train.run_dir as run_dir

        real_save = run_dir.atomic_save

        def atomic_save(obj, path):
            real_save(obj, path)
            if Path(path).name == "checkpoint_last.pt":
                _pause(marker)
        run_dir.atomic_save = atomic_save
    elif mode == "probe":
        import scale_toolkit.probes as probes

        real_run = probes.run_probes

        def run_probes(*a, progress=None, **kw):
            def slow(*p):
                progress(*p)
                _pause(marker)
            return real_run(*a, progress=slow, **kw)
        probes.run_probes = run_probes
    elif mode == "import":
        from scale_toolkit.store import FeatureStore

        real_rows = FeatureStore.write_rows

        def write_rows(self, *a, **kw):
            real_rows(self, *a, **kw)
            _pause(marker)
        FeatureStore.write_rows = write_rows
    from cli.main import main as scale_main

    sys.argv = ["scale", *args]  # as the console script runs it (argv from the command line)
    scale_main()


if __name__ == "__main__":
    main()
