"""Strict, shape-checked state-dict loading shared by every family."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import ScaleError


def _preview(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_strict(model: nn.Module, state: dict, strict: bool = True, what: str = "checkpoint") -> list[str]:
    """Load `state` into `model`; any missing, unexpected or wrong-shape key is an error naming the keys.

    With strict=False the offending keys are skipped and returned (the caller prints them).
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if strict and (missing or unexpected or wrong_shape):
        parts = []
        if missing:
            parts.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_preview(unexpected)}")
        if wrong_shape:
            parts.append(f"wrong shapes (file vs model): {_preview(wrong_shape)}")
        raise ScaleError(f"{what} does not match the architecture; " + "; ".join(parts))
    bad = {s.split(" ")[0] for s in wrong_shape}
    usable = {k: v for k, v in state.items() if k in own and k not in bad}
    model.load_state_dict(usable, strict=False)
    return missing + unexpected + sorted(bad)


# Pickled objects that public checkpoints carry next to their tensors (VideoMAE/MAE save `args`
# as an argparse.Namespace); everything else stays refused by torch's weights_only loader.
_SAFE_PICKLE_GLOBALS: list = []


def _safe_globals() -> list:
    if not _SAFE_PICKLE_GLOBALS:
        import argparse  # noqa: PLC0415

        _SAFE_PICKLE_GLOBALS.append(argparse.Namespace)
    return _SAFE_PICKLE_GLOBALS


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint file (.pt/.pth/.pyth/.bin or .safetensors) without running arbitrary pickle code.
    An empty, truncated or garbage file is one line naming it, never a traceback."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ScaleError(f"checkpoint {path} is empty (0 bytes): a download or copy was cut short; fetch it again")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # noqa: PLC0415

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001  SafetensorError, OSError, ...: a damaged or foreign file
            raise ScaleError(f"cannot read checkpoint {path} as safetensors ({_first_line(err)}); the file is "
                             "damaged or not a safetensors file: fetch it again") from None
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        objects = re.search(r"Unsupported global: (GLOBAL \S+)", str(err))
        if objects is None:  # not a pickle of weights at all: random bytes, another format, a cut file
            raise ScaleError(f"cannot read checkpoint {path}: not a PyTorch checkpoint, or damaged "
                             "(its data is not a pickle torch can read); fetch it again") from None
        raise ScaleError(
            f"{path} holds Python objects besides tensors ({objects.group(1)}), which scale will not unpickle; "
            "re-save only the weights, e.g. torch.save(torch.load(f, weights_only=False)['model'], 'weights.pt')"
        ) from None
    except Exception as err:  # noqa: BLE001  RuntimeError (bad zip), EOFError, OSError, IndexError, ...
        raise ScaleError(f"cannot read checkpoint {path}: {_first_line(err)}; the file is truncated or "
                         "damaged: fetch it again") from None
    if not isinstance(obj, dict):
        raise ScaleError(f"{path} is not a state dict (found {type(obj).__name__}); save model.state_dict() instead")
    return obj


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0].split('. ')[0][:160]}" if text else type(err).__name__


def unwrap_state(obj: dict, wrappers: tuple[str, ...] = ("model", "module", "state_dict", "model_state")) -> dict:
    """Return the tensor dict inside a training checkpoint ({'model': ..., 'optimizer': ...}), or obj itself."""
    for key in wrappers:
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ScaleError(
            f"no weights found in the checkpoint (top-level keys: {_preview(sorted(obj))}); "
            f"expected a state dict or one of the keys {', '.join(wrappers)}"
        )
    return tensors


def strip_prefix(state: dict, prefix: str) -> dict:
    """Keys that start with `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def preview_keys(keys, limit: int = 6) -> str:
    return _preview(sorted(keys), limit)
