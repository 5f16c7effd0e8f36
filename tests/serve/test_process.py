"""`scale serve` as a process: its flags checked in one line, markup in a path printed as text,
and Ctrl-C / SIGTERM (also with an upload being embedded) ending in one line and status 130/143."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag,value,needle", [
    ("--embed-timeout", "nan", "--embed-timeout must be a finite number"),
    ("--embed-timeout", "inf", "--embed-timeout must be a finite number"),
    ("--max-upload-mb", "nan", "--max-upload-mb must be a finite number"),
    ("--max-upload-mpix", "inf", "--max-upload-mpix must be a finite number"),
    ("--max-upload-mpix", "0", "--max-upload-mpix must be positive"),
    ("--device", "banana", "unknown --device 'banana'"),
    ("--device", "cuda:7", "--device cuda:7"),
    ("--device", "meta", "scale serve runs on cpu or cuda"),
])
def test_bad_flags_are_one_line_and_status_2(run_cli, model_index, flag, value, needle):
    if value == "cuda:7":
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a GPU 7")
    code, _, err = run_cli("serve", "--index", model_index["index"], flag, value, "--port", "0")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def _start(index: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "300"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(index), "--port", "0", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            proc.kill()
            pytest.fail("scale serve printed no URL within 120 s: " + proc.stderr.read())
        if "http://" in line:
            return proc, line


def _stopped(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("scale serve did not stop within 60 s of the signal")
    return proc.returncode, proc.stderr.read()


def test_markup_in_the_index_path_is_printed_as_text_and_ctrl_c_is_one_line(tmp_path, model_index):
    folder = tmp_path / "runs [red]x[" / "bold]\x1b[2J\a"  # ".../runs [red]x[/bold]": a closing tag rich cannot match
    folder.mkdir(parents=True)  # and a "clear screen" escape sequence and a bell
    for suffix in ("", ".json"):
        shutil.copy(str(model_index["index"]) + suffix, folder / ("g.faiss" + suffix))
    proc, line = _start(folder / "g.faiss")
    assert str(tmp_path / "runs [red]x[" / "bold]\\x1b[2J\\x07" / "g.faiss") in line
    assert "\x1b" not in line and "\a" not in line
    code, err = _stopped(proc, signal.SIGINT)
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["scale: interrupted by SIGINT: the server stopped (nothing to keep); "
                                        "start it again to serve the index"], err


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_with_an_upload_in_flight_is_one_line(video_index, sig, status):
    proc, line = _start(video_index["index"])
    url = line[line.index("http://"):].split()[0]
    video = video_index["videos"] / video_index["ids"][0]
    boundary = "scaleboundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
            'Content-Type: video/mp4\r\n\r\n').encode() + video.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "api/search", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": url.rstrip("/")})
    answered: list = []

    def upload():
        try:
            with urllib.request.urlopen(request, timeout=120) as res:
                answered.append(res.status)
        except Exception as exc:  # noqa: BLE001  the server stopping mid-request is expected
            answered.append(type(exc).__name__)

    threading.Thread(target=upload, daemon=True).start()
    time.sleep(1.5)  # the upload has arrived; its worker is starting or embedding
    assert not answered, answered  # still in flight (a worker takes seconds to start)
    code, err = _stopped(proc, sig)
    assert code == status and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(f"scale: interrupted by {signal.Signals(sig).name}: the server stopped"), err
    assert len(err.strip().splitlines()) == 1, err
