"""How `scale serve` serves an index: the defaults of its flags and their checks (importable without FastAPI)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_numbers
from ..errors import ScaleError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeOptions:
    """Where the server listens and what a query may cost.

    >>> ServeOptions(port=70000).validate()
    Traceback (most recent call last):
    ...
    scale_toolkit.errors.ScaleError: --port must be in 0..65535, got 70000
    >>> ServeOptions(embed_timeout_s=float("nan")).validate()
    Traceback (most recent call last):
    ...
    scale_toolkit.errors.ScaleError: --embed-timeout must be a finite number, got nan
    """

    host: str = "127.0.0.1"  # loopback: other machines can neither query nor upload
    port: int = 8000  # 0: any free port
    max_upload_mb: float = 100.0  # the largest video file a query may upload
    max_upload_mpix: float = 250.0  # width x height x frames of an upload, in millions (checked before decoding)
    device: str = "cpu"  # for the SCALE model and for embedding uploaded videos
    embed_timeout_s: float = 300.0  # seconds an uploaded video may take to decode and embed

    def url(self, port: int) -> str:
        """The page's address on `port` (the bound one: with --port 0 the system picks it).

        >>> ServeOptions().url(8000), ServeOptions(host="::1").url(8001)
        ('http://127.0.0.1:8000/', 'http://[::1]:8001/')
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/"

    def loopback_only(self) -> bool:
        """Whether only this machine can reach the server."""
        return self.host in LOOPBACK_HOSTS

    def validate(self) -> None:
        """A ScaleError naming the flag of the first value out of range (NaN and infinity included)."""
        check_numbers(self, flags={"embed_timeout_s": "--embed-timeout"})
        if not 0 <= self.port <= 65535:
            raise ScaleError(f"--port must be in 0..65535, got {self.port}")
        if self.embed_timeout_s <= 0:
            raise ScaleError(f"--embed-timeout must be positive, got {self.embed_timeout_s}")
        if self.max_upload_mpix <= 0:
            raise ScaleError(f"--max-upload-mpix must be positive, got {self.max_upload_mpix}")
        check_max_upload(self.max_upload_mb)


def check_max_upload(max_upload_mb: float) -> None:
    if not (isinstance(max_upload_mb, (int, float)) and math.isfinite(max_upload_mb)) or max_upload_mb <= 0:
        raise ScaleError(f"--max-upload-mb must be a positive finite number, got {max_upload_mb}")


def serve_device(name: str) -> str:
    """The torch device `--device` names, as a string; only the CPU or a present CUDA GPU (one line otherwise)."""
    from ..runtime import resolve_device

    device = resolve_device(name)
    if device.type not in ("cpu", "cuda"):
        raise ScaleError(f"--device {name}: scale serve runs on cpu or cuda[:N], not {device.type}")
    return str(device)
