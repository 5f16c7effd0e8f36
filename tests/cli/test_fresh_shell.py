"""The commands a newcomer is shown run as shown from a fresh shell (issue #30): the demo's printed
`serve` command, and every `scale ...` line of the README after its set-up block (`make demo`,
`make test`, `source .venv/bin/activate`). A fresh shell: `env -i` with a PATH of system folders only."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
VENV_SCRIPT = Path(sys.executable).parent / "scale"

needs_install = pytest.mark.skipif(not VENV_SCRIPT.exists() or Path(sys.executable).parent.parent != REPO / ".venv",
                                   reason="runs the console script of this checkout's .venv (make install)")


def fresh_shell(script: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``script`` in bash with an empty environment but HOME and a system PATH: nothing of this session leaks in."""
    env = {"PATH": CLEAN_PATH, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", "COLUMNS": "100"}
    return subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", "--noprofile", "--norc", "-c", script],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def readme_command_lines(text: str) -> list[str]:
    """The command lines of the README's ```bash blocks, continuation lines joined, comments dropped.

    >>> readme_command_lines("x\\n```bash\\nmake demo   # set up\\nscale a --b \\\\\\n    --c d\\n```\\n")
    ['make demo', 'scale a --b --c d']
    """
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                lines.append(line)
    return lines


@needs_install
def test_the_demos_printed_serve_command_runs_from_a_fresh_shell(tmp_path, monkeypatch, run_cli):
    """`scale demo` run as `make demo` runs it (.venv/bin/scale, venv not activated) prints a serve
    command; pasted into a fresh shell in the same folder, it starts `scale serve` (here: its --help)."""
    import scale_toolkit.demo.run as demo_run

    index = tmp_path / "scale-demo" / "index.faiss"

    def finished_demo(cfg, progress=None):  # the pipeline's report as a finished demo leaves it; the printing is under test
        return demo_run.DemoReport(out=cfg.out, paths={"index": Path("scale-demo") / "index.faiss", "run": cfg.out / "run"})

    monkeypatch.setattr(demo_run, "run_demo", finished_demo)
    monkeypatch.setenv("PATH", CLEAN_PATH)  # the user's shell: the venv is not on PATH
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")  # the checkout's venv, where `make demo` leaves it
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    code, out, err = run_cli("demo", "--out", "scale-demo")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "browse and query" in ln)
    command = line.split(": ", 1)[1]
    assert command == f".venv/bin/scale serve --index {Path('scale-demo') / 'index.faiss'}"
    index.parent.mkdir()
    done = fresh_shell(command + " --help", cwd=tmp_path)
    assert done.returncode == 0 and "--index" in done.stdout, done.stderr
    bare = fresh_shell("scale serve --help", cwd=tmp_path)
    assert bare.returncode == 127, "bare `scale` should not resolve in a fresh shell: the test would prove nothing"


@needs_install
def test_scale_is_printed_bare_where_path_finds_this_install():
    from cli.commands.demo import scale_command

    assert scale_command(path_env=f"{VENV_SCRIPT.parent}:{CLEAN_PATH}") == "scale"
    assert scale_command(path_env=CLEAN_PATH, cwd=REPO) == ".venv/bin/scale"
    assert scale_command(path_env=CLEAN_PATH, cwd=Path("/")) == str(VENV_SCRIPT.absolute())


@needs_install
def test_every_readme_command_resolves_from_a_fresh_shell_after_the_set_up_block():
    """Each `scale ...` line of the README, run with `--help` appended in one fresh shell that ran
    only the set-up block's activation line: the command and every option it names exist (click
    rejects an unknown option before it prints the help), and `scale` is on PATH."""
    lines = readme_command_lines((REPO / "README.md").read_text())
    activation = "source .venv/bin/activate"
    assert activation in lines, "the README's set-up block should show the activation line once"
    assert lines.index(activation) < min(i for i, ln in enumerate(lines) if ln.startswith("scale "))
    script, scale_lines = ["set -u"], 0
    for line in lines:
        first = line.split()[0]
        if first == "make":  # the two set-up commands (and make bench): what the test runs after
            continue
        if line == activation or re.fullmatch(r"[A-Z_]+=\S+", line):
            script.append(line)
        elif first == "scale":
            scale_lines += 1
            script.append(f"{line} --help >/dev/null || {{ echo {shlex.quote('README command failed: ' + line)} >&2; exit 1; }}")
        else:
            pytest.fail(f"README line neither make, the activation, a variable nor scale: {line}")
    assert scale_lines >= 15
    done = fresh_shell("\n".join(script), cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@needs_install
def test_the_readme_walkthrough_on_the_shared_clips_runs_from_a_fresh_shell(tmp_path, shared_data):
    """The README's "Try it first" block, verbatim, in a fresh shell: a checkout-like folder (its .venv,
    ../shared/data beside it), so the block's relative paths hold and nothing is written into the repo."""
    text = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "S=../shared/data" in b)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(REPO / ".venv")
    (checkout / "cache").mkdir()  # a clone has it (its README is tracked): the default home of stores
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data)
    done = fresh_shell("set -e\nsource .venv/bin/activate\n" + block, cwd=checkout, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (checkout / "runs" / "ucfmini" / "model.pt").exists() and (checkout / "cache" / "ucfmini_index.faiss").exists()
    assert re.search(r"v_\w+\.avi", done.stdout), done.stdout[-2000:]  # the query printed its nearest videos
