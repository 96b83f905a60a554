"""Loading and saving weights: the official EDSR-PyTorch files and this package's own format.

* :func:`load_official` reads an official ``.pt`` file (a plain ``state_dict``), works out
  which model it holds (EDSR or MDSR, blocks, features, scale, colours) from the tensor
  names and shapes, builds that model and loads it with ``strict=True``.
* :func:`load_weights` loads a file or state dict into a model you built, with errors that
  say which keys are missing or have the wrong shape and which model would fit.
* :func:`init_from` starts an x3/x4 model from a trained x2 one, as the paper does.
* :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`read_checkpoint`: our format.

Our format (one for model weights and for training runs)
--------------------------------------------------------
A ``.pt`` file written with ``torch.save`` holding one dict::

    {"format": "edsr_lab", "version": 2,
     "arch": "EDSR" | "SRResNet" | "MDSR",   # class name (another nn.Module's name in a
     "config": {...},                        #  training checkpoint; config then None)
     "state_dict": {name: CPU tensor},       # model.state_dict() of the unwrapped model
     "extra": ...,                           # whatever the caller passed (plain values)
     "checksum": "sha256:<hex>",             # of every tensor's name, dtype, shape, bytes
     "training": {...}}                      # only in training checkpoints (see below)

A *training checkpoint* (written by :func:`edsr_lab.train.train`) is a model checkpoint
plus ``"training": {"step", "config" (the TrainConfig), "optimizer", "scheduler",
"history", "rng", "sampler" (when the sampler has a state)}``. So
:func:`load_checkpoint`, :func:`load_weights`, ``python -m edsr_lab upscale`` and
:func:`load_official` all read it (the last three take only the weights), and
:func:`edsr_lab.train.load_training_checkpoint` returns the training state to resume.
A ``.safetensors`` file holds the same tensors with ``format``, ``version``, ``arch``,
``config``, ``extra`` and ``checksum`` as JSON metadata (model checkpoints only).
Version 1 files (no checksum) are still read, and so are training checkpoints of the
older separate format ``{"format": "edsr_lab.train/1", ...}`` (by
:func:`edsr_lab.train.load_training_checkpoint` only).

On load, the stored config is checked against the tensors' names and shapes *before* the
model is built (a damaged or hostile config cannot make it allocate without bound), and
the checksum is verified (a flipped byte is reported, not loaded). Files are written
atomically (:func:`edsr_lab.files.atomic_write`): an interrupted save leaves the previous
file, and the permissions are those of a plain ``open(path, "wb")`` for every format.

Every file is read with ``torch.load(..., weights_only=True)``: unpickling a full pickle
can run arbitrary code, so files holding other Python objects are refused. Problems with a
file raise :class:`edsr_lab.errors.CheckpointError` naming the file. Importing this module
does not import Pillow.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import (
    BadArgumentError,
    BadArgumentTypeError,
    CheckpointError,
    OutputExistsError,
    OutputPathError,
)
from edsr_lab.files import atomic_write
from edsr_lab.models.common import count_parameters, dataset_mean
from edsr_lab.models.registry import ARCHITECTURES, architecture, is_multiscale
from edsr_lab.paths import unreadable_reason

__all__ = [
    "ARCHITECTURES",
    "TransferReport",
    "count_parameters",
    "infer_config",
    "init_from",
    "load_checkpoint",
    "load_official",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "tensor_checksum",
]

# ARCHITECTURES (from the registry): the model classes our checkpoints can rebuild, by the
# class name stored in the file; a model registered with register_model is one of them.

FORMAT = "edsr_lab"
FORMAT_VERSION = 2  # 2 added "checksum" and "training"; version 1 files are still read
_LEGACY_TRAINING_FORMAT = "edsr_lab.train/1"  # training checkpoints before the merge

# What torch.load raises on damaged or foreign files (found by feeding it garbage, empty and
# truncated files): the zip reader raises RuntimeError or OSError (EINVAL), the legacy
# reader KeyError/EOFError, the weights-only unpickler UnpicklingError. Listed explicitly
# instead of a blind `except Exception`.
_READ_ERRORS = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    struct.error,
    zipfile.BadZipFile,
    OSError,  # a truncated zip makes the reader seek past the end: EINVAL
)

# Prefixes that wrappers add to every key: nn.DataParallel / DDP ("module."), torch.compile
# ("_orig_mod."), the official trainer's Model wrapper when saved whole ("model.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
# Keys under which training scripts often nest the weights.
_NESTED_KEYS = ("state_dict", "model", "params_ema", "params", "net")


# ----------------------------------------------------------------------------- reading


def _torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into CheckpointError."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist (working directory: {os.getcwd()}); "
            f"check the path, or download/train the model first"
        )
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file")
    reason = unreadable_reason(path, "checkpoint")  # a symlink loop, a FIFO, empty, ...
    if reason is not None:
        raise CheckpointError(f"checkpoint {str(path)!r}: {reason}")
    with open(path, "rb") as f:
        head = f.read(64)
    # torch.save writes a zip ("PK..."); very old files are a pickle (protocol opcode 0x80).
    if not head.startswith((b"PK", b"\x80")):
        what = (
            "a web page (HTML), not weights: the download link is probably dead or needs a login"
            if head.lstrip().lower().startswith((b"<", b"<!doctype"))
            else "not a PyTorch file (it does not start like a torch.save zip or pickle)"
        )
        raise CheckpointError(f"checkpoint {str(path)!r} is {what}; download or save it again")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: permission denied") from e
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds Python objects other than tensors and plain "
                f"containers (e.g. a whole pickled model), or is damaged; loading such objects "
                f"could run arbitrary code, so it is refused (torch.load weights_only=True). "
                f"If you trust its source, re-save just the weights once: "
                f"torch.save(torch.load(path, weights_only=False).state_dict(), new_path)"
            ) from e
        raise _unreadable(path, e) from e
    except _READ_ERRORS as e:
        raise _unreadable(path, e) from e


def _unreadable(path: Path, e: BaseException) -> CheckpointError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return CheckpointError(
        f"checkpoint {str(path)!r} ({path.stat().st_size:,} bytes) is not a readable PyTorch "
        f"file: it is truncated (an interrupted download?) or not a .pt checkpoint at all "
        f"[{type(e).__name__}: {first[:120]}]; download or save it again"
    )


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Find the state dict in ``obj`` (plain, nested under a usual key, or ours) and clean it."""
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        _verify_checksum(obj, source)
        obj = obj.get("state_dict")
    for _ in range(2):  # e.g. {"model": {"state_dict": ...}} at most
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in _NESTED_KEYS:
                if isinstance(obj.get(key), Mapping):
                    obj = obj[key]
                    break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{source} does not hold a state dict (a dict of tensors) but "
            f"{type(obj).__name__}{' (empty)' if isinstance(obj, Mapping) else ''}"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{source} is not a state dict: entries such as {bad[:3]!r} are not tensors "
            f"(keys seen: {list(obj)[:5]!r})"
        )
    sd = dict(obj)
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _source_name(path_or_state_dict: Any) -> str:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return f"checkpoint {str(Path(path_or_state_dict))!r}"
    return "the state dict"


def _describe_ours(obj: Any) -> str:
    """' (an edsr_lab training checkpoint of EDSR, step 300)' for our files, else ''."""
    if not isinstance(obj, Mapping):
        return ""
    if obj.get("format") == _LEGACY_TRAINING_FORMAT:
        return f" (an edsr_lab training checkpoint, old format, step {obj.get('step')})"
    if obj.get("format") != FORMAT:
        return ""
    training = obj.get("training")
    if isinstance(training, Mapping):
        return (
            f" (an edsr_lab training checkpoint of {obj.get('arch')}, step "
            f"{training.get('step')}; load_checkpoint(path) rebuilds the model)"
        )
    return f" (an edsr_lab checkpoint of {obj.get('arch')}; load_checkpoint(path) rebuilds it)"


def _read_state_dict(path_or_state_dict: Any, map_location: Any) -> tuple[dict, str]:
    source = _source_name(path_or_state_dict)
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        if path.suffix == ".safetensors":
            tensors, meta = _read_safetensors(path)
            if meta.get("format") == FORMAT:
                _verify_checksum({**meta, "state_dict": tensors}, source)
            obj: Any = tensors
        else:
            obj = _torch_load(path, map_location)
            source += _describe_ours(obj)
    else:
        obj = path_or_state_dict
    return _unwrap_state_dict(obj, source), source


# ------------------------------------------------------------------- integrity checks


def _tensors_in(obj: Any, name: str = "") -> Any:
    """(name, tensor) of every tensor in nested dicts/lists, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        yield name, obj
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=str):
            yield from _tensors_in(obj[key], f"{name}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors_in(v, f"{name}/{i}")


def tensor_checksum(state_dict: Mapping[str, torch.Tensor], training: Any = None) -> str:
    """``"sha256:<hex>"`` of every tensor (name, dtype, shape and bytes) in ``state_dict``
    and ``training``: what our files store to detect damaged data on load."""
    h = hashlib.sha256()
    for name, t in _tensors_in({"state_dict": state_dict, "training": training}):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + h.hexdigest()


def _verify_checksum(payload: Mapping[str, Any], source: str) -> None:
    """Compare the stored checksum with the tensors read; version 1 files have none."""
    version = payload.get("version")
    if str(version) == "1":
        return
    stored = payload.get("checksum")
    if not isinstance(stored, str):
        raise CheckpointError(
            f"{source} is an edsr_lab checkpoint without its checksum (edited by hand?); "
            "save it again with save_checkpoint"
        )
    if tensor_checksum(payload.get("state_dict") or {}, payload.get("training")) != stored:
        raise CheckpointError(
            f"{source} is damaged: its tensors do not match the checksum stored when it was "
            "saved (a corrupted copy or disk?); download, copy or save it again"
        )


def _upsampler_stages(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Convolution stages of an upsampler stored under ``prefix`` (4-D weights only, so
    PReLU and batch-norm weights between stages are not counted)."""
    return sum(
        1
        for k, v in sd.items()
        if k.startswith(prefix)
        and k.endswith(".weight")
        and k[len(prefix) : -len(".weight")].isdigit()
        and v.dim() == 4
    )


def _stages_for(scale: Any) -> int | None:
    """Upsampler stages a scale needs (x2: 1, x4: 2, x3: 1); None if not supported."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
        return None
    if scale == 3:
        return 1
    return int(math.log2(scale)) if scale & (scale - 1) == 0 else None


def _check_config(arch: str, config: Mapping[str, Any], sd: Mapping, source: str) -> None:
    """Refuse a stored config that its tensors contradict, *before* building the model.

    Building first would let a damaged or hostile file (``n_resblocks=10**7``,
    ``n_feats=10**6``) allocate without bound; every size checked here is bounded by
    the tensors actually in the file.
    """

    def refuse(what: str) -> CheckpointError:
        return CheckpointError(
            f"{source}: its config says {what}, so the file is damaged or was edited; "
            "download or save it again"
        )

    head = sd.get("head.0.weight")
    if not isinstance(head, torch.Tensor) or head.dim() != 4:
        raise refuse(f"{arch}, but it has no 4-D head.0.weight")
    expected = {
        "n_feats": head.shape[0],
        "n_colors": head.shape[1],
        "n_resblocks": _count(sd, "body.{}.body.0.weight"),
    }
    if "kernel_size" in config:
        expected["kernel_size"] = head.shape[-1]
    for key, have in expected.items():
        if key in config and config[key] != have:
            raise refuse(f"{key}={config[key]!r} but its tensors have {have}")
    if architecture(arch) is not None and architecture(arch).multiscale:
        scales = config.get("scales")
        if not isinstance(scales, (list, tuple)) or len(scales) != _count(
            sd, "upsample.{}.0.weight"
        ):
            raise refuse(
                f"scales={scales!r} but it has {_count(sd, 'upsample.{}.0.weight')} upsamplers"
            )
        pairs = [(s, f"upsample.{i}.") for i, s in enumerate(scales)]
    else:
        pairs = [(config.get("scale"), "tail.0.")]
    for scale, prefix in pairs:
        have = _upsampler_stages(sd, prefix)
        if _stages_for(scale) != have:
            raise refuse(f"scale {scale!r} but its upsampler {prefix}* has {have} stage(s)")


# -------------------------------------------------------------------------- inference


def _shape(sd: Mapping[str, torch.Tensor], key: str, source: str, ndim: int) -> tuple:
    if key not in sd:
        raise CheckpointError(
            f"{source} is not an EDSR/MDSR state dict: it has no {key!r} "
            f"(its first keys: {list(sd)[:6]!r})"
        )
    shape = tuple(sd[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"{source}: {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    i = 0
    while pattern.format(i) in sd:
        i += 1
    return i


def _upsampler_scale(sd: Mapping[str, Any], prefix: str, n_feats: int, source: str) -> int:
    """Scale of a pixel-shuffle upsampler stored under ``prefix`` (e.g. ``tail.0.``)."""
    out = _shape(sd, prefix + "0.weight", source, 4)[0]
    if out == 9 * n_feats:
        return 3
    if out == 4 * n_feats:
        stages = 1
        while f"{prefix}{2 * stages}.weight" in sd:
            stages += 1
        return 2**stages
    raise CheckpointError(
        f"{source}: {prefix}0.weight has {out} output channels; a pixel-shuffle upsampler "
        f"with {n_feats} features has {4 * n_feats} (x2, x4) or {9 * n_feats} (x3)"
    )


def _rgb_range(sd: Mapping[str, torch.Tensor], mean0: float) -> float:
    """Read the pixel range from the frozen mean shift: bias = -rgb_range * mean."""
    bias = sd.get("sub_mean.bias")
    if bias is None or bias.numel() == 0 or mean0 == 0:
        return 255.0
    value = -float(bias.flatten()[0]) / mean0
    for known in (255.0, 1.0):
        if abs(value - known) < 1e-3 * known:
            return known
    return round(value, 4)


def infer_config(state_dict: Mapping[str, torch.Tensor], *, source: str = "the state dict") -> dict:
    """Work out the model an official-style state dict belongs to.

    Returns ``{"arch": "EDSR" | "MDSR", <constructor arguments>}``: family (MDSR has
    ``pre_process.*`` and ``upsample.*`` keys), ``n_feats`` and ``n_colors`` from
    ``head.0.weight``, ``n_resblocks`` by counting ``body.{i}.body.0.weight``, the scale
    from the upsampler (``tail.0.0.weight`` with 4F outputs is x2, plus ``tail.0.2`` x4;
    9F outputs x3) and ``rgb_range`` from ``sub_mean.bias``.

    ``res_scale`` is *not* stored in the weights: it is set to 0.1 for the paper's
    32-block, 256-feature EDSR and 1.0 otherwise (the values the official files were
    trained with); pass ``res_scale=`` to :func:`load_official` for anything else.
    """
    f, n_colors, k, _ = _shape(state_dict, "head.0.weight", source, 4)
    if n_colors not in (1, 3):
        raise CheckpointError(f"{source}: head.0.weight takes {n_colors} channels, not 1 or 3")
    rgb_range = _rgb_range(state_dict, dataset_mean(n_colors)[0])
    n_resblocks = _count(state_dict, "body.{}.body.0.weight")
    _shape(state_dict, f"body.{n_resblocks}.weight", source, 4)
    if "pre_process.0.0.body.0.weight" in state_dict or "upsample.0.0.weight" in state_dict:
        n_up = _count(state_dict, "upsample.{}.0.weight")
        scales = [_upsampler_scale(state_dict, f"upsample.{i}.", f, source) for i in range(n_up)]
        if not scales:
            raise CheckpointError(f"{source} looks like MDSR but has no upsample.0.0.weight")
        return {
            "arch": "MDSR",
            "n_resblocks": n_resblocks,
            "n_feats": f,
            "scales": scales,
            "n_colors": n_colors,
            "rgb_range": rgb_range,
        }
    batch_norm = "body.0.body.1.running_mean" in state_dict
    act = "prelu" if not batch_norm and "body.0.body.1.weight" in state_dict else "relu"
    return {
        "arch": "EDSR",
        "n_resblocks": n_resblocks,
        "n_feats": f,
        "scale": _upsampler_scale(state_dict, "tail.0.", f, source),
        "res_scale": 0.1 if (n_resblocks, f) == (32, 256) else 1.0,
        "kernel_size": k,
        "batch_norm": batch_norm,
        "n_colors": n_colors,
        "rgb_range": rgb_range,
        "act": act,
    }


def _describe(arch: str, config: Mapping[str, Any]) -> str:
    return f"{arch}({', '.join(f'{k}={v!r}' for k, v in config.items() if k != 'arch')})"


# ---------------------------------------------------------------------------- loading


def _mismatches(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> list[str]:
    """What differs between a model's state dict ``own`` and ``sd``: one item per kind."""
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k}: {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    lines = []
    if wrong:
        lines.append(f"{len(wrong)} shape mismatch(es): " + "; ".join(wrong[:3]))
    if missing:
        lines.append(f"{len(missing)} key(s) missing from the file, e.g. {missing[:4]}")
    if unexpected:
        lines.append(f"{len(unexpected)} unexpected key(s) in the file, e.g. {unexpected[:4]}")
    return lines


def _strict_load(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(sd, strict=True)`` with a readable CheckpointError on mismatch."""
    problems = _mismatches(model.state_dict(), sd)
    if not problems:
        model.load_state_dict(sd, strict=True)
        return
    cfg = getattr(model, "config", {})
    lines = [f"{source} does not fit {_describe(type(model).__name__, cfg)}:"]
    lines += [f"  {line}" for line in problems]
    try:
        fits = infer_config(sd, source=source)
    except CheckpointError:
        lines.append("  It does not look like an EDSR/MDSR state dict at all.")
    else:
        lines.append(
            f"  The weights fit {_describe(fits['arch'], fits)}: build that model, or let "
            f"load_official(path) build it from the file. To start an x3/x4 model from x2 "
            f"weights use init_from(load_official(path), scale)."
        )
    raise CheckpointError("\n".join(lines))


def _to_device(model: nn.Module, map_location: Any) -> nn.Module:
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model


def load_official(
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    map_location: Any = "cpu",
    res_scale: float | None = None,
    scale: int | None = None,
) -> nn.Module:
    """Build the model an official EDSR-PyTorch checkpoint holds and load it.

    Args:
        path_or_state_dict: a ``.pt`` path (read with ``weights_only=True``) or a state
            dict; a dict that nests the weights under ``"state_dict"``/``"model"``, and
            keys prefixed by ``module.`` (DataParallel), are accepted too, as are BasicSR
            EDSR files (``{"params": ...}``; see :mod:`edsr_lab.models.convert`).
        map_location: where tensors are loaded; a device string/object also moves the model.
        res_scale: residual scaling for EDSR, which the weights do not record; default 0.1
            for the paper's 32x256 EDSR, 1.0 otherwise (see :func:`infer_config`).
        scale: if given, the scale you expect; a file for another scale is refused (the
            paper's x2/x3/x4 files differ only in their tail).

    Returns:
        An :class:`EDSR` or :class:`MDSR` in eval mode, loaded with ``strict=True``.

    Raises:
        CheckpointError: missing/unreadable file, unexpected keys or shapes, wrong scale.
    """
    sd, source = _read_state_dict(path_or_state_dict, map_location)
    from edsr_lab.models import convert  # BasicSR's EDSR layout -> the official one

    if convert.is_basicsr_edsr(sd):
        sd = convert.from_basicsr_edsr(sd, source=source)
    cfg = infer_config(sd, source=source)
    arch = cfg.pop("arch")
    if scale is not None:
        have = cfg.get("scales", [cfg.get("scale")])
        if scale not in have:
            raise CheckpointError(
                f"{source} holds an {arch} model for x{'/x'.join(map(str, have))}, not x{scale}; "
                f"use the x{scale} file (e.g. edsr_baseline_x{scale}-*.pt), or start an "
                f"x{scale} model from it with init_from(load_official(path), {scale})"
            )
    if res_scale is not None:
        if arch != "EDSR":
            raise BadArgumentError(f"res_scale applies to EDSR only; {source} holds {arch}")
        cfg["res_scale"] = float(res_scale)
    model = ARCHITECTURES[arch](**cfg)
    _strict_load(model, sd, source)
    model.eval()
    return _to_device(model, map_location)


def load_weights(
    model: nn.Module,
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    map_location: Any = "cpu",
) -> nn.Module:
    """Load weights (official file, our checkpoint, or a state dict) into ``model``, strictly.

    Unlike ``model.load_state_dict``, a mismatch raises CheckpointError listing the keys
    and shapes that differ and the model the weights would fit. Returns ``model``.
    """
    sd, source = _read_state_dict(path_or_state_dict, map_location)
    _strict_load(model, sd, source)
    return model


# --------------------------------------------------------------------------- transfer


@dataclass
class TransferReport:
    """What :func:`init_from` copied: tensor names, and why the others were not copied."""

    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def init_from(model: nn.Module, scale: int) -> nn.Module:
    """A new model like ``model`` but for ``scale``, starting from ``model``'s weights.

    The paper trains x3 and x4 models starting from the trained x2 model. As in the
    official code, every tensor whose name and shape match is copied -- everything but
    the tail's upsampler. At x3 the upsampler conv (9F outputs instead of 4F) is skipped;
    at x4 from x2 the first x2 stage ``tail.0.0`` has the same shape and *is* copied, the
    second stage ``tail.0.2`` starts fresh. The new model sits on ``model``'s device and
    dtype, in its train/eval mode; ``new.transfer_report`` is a :class:`TransferReport`.
    """
    if is_multiscale(model):
        raise BadArgumentError(
            f"{type(model).__name__} already serves several scales; init_from is for "
            "single-scale models (EDSR, SRResNet)"
        )
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "scale" not in config:
        raise BadArgumentTypeError(
            f"init_from needs an EDSR or SRResNet, got {type(model).__name__}"
        )
    new = type(model)(**{**config, "scale": scale})
    ref = next(model.parameters())
    new.to(device=ref.device, dtype=ref.dtype)
    new.train(model.training)
    src, dst = model.state_dict(), new.state_dict()
    report = TransferReport()
    with torch.no_grad():
        for key, tensor in dst.items():
            if key not in src:
                report.skipped[key] = f"not in the x{config['scale']} model"
            elif src[key].shape != tensor.shape:
                report.skipped[key] = (
                    f"shape {tuple(src[key].shape)} in the x{config['scale']} model, "
                    f"{tuple(tensor.shape)} at x{scale}"
                )
            else:
                tensor.copy_(src[key])
                report.copied.append(key)
    new.transfer_report = report
    return new


# ------------------------------------------------------------------------ our format


def _unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside torch.compile / DataParallel / DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


_PRIMITIVES = (type(None), bool, int, float, str, bytes, torch.Tensor)


def _check_primitive(obj: Any, where: str) -> None:
    """Refuse values that torch.load(weights_only=True) could not read back."""
    if isinstance(obj, _PRIMITIVES):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_primitive(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise BadArgumentTypeError(f"{where} has a key of type {type(k).__name__}: {k!r}")
            _check_primitive(v, f"{where}[{k!r}]")
        return
    raise BadArgumentTypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints store only "
        f"None, bools, numbers, strings, tensors, lists, tuples and dicts, so that "
        f"torch.load(weights_only=True) can read them back: convert it (float(x), str(path), "
        f"x.tolist(), torch.from_numpy(a), obj.state_dict())"
    )


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    extra: Any = None,
    overwrite: bool = False,
    training: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` (EDSR, SRResNet or MDSR) so that :func:`load_checkpoint` rebuilds it.

    Writes our format (see the module docstring) with ``torch.save``, or, for a path
    ending in ``.safetensors``, the tensors in safetensors format with arch, config, extra
    and checksum as JSON metadata (then ``extra`` must be JSON-serialisable: no tensors).
    ``extra`` (e.g. notes, metrics) may hold only None, bools, numbers, strings, tensors,
    lists, tuples and dicts, so the file loads with ``weights_only=True``. ``training`` is
    the training state :func:`edsr_lab.train.train` adds (``.pt`` only); with it, any
    ``nn.Module`` can be saved (its config is stored when it has a plain ``config`` dict).

    The file is written to a temporary file in the same folder and renamed, so an
    interruption never leaves a half-written checkpoint; missing folders are created.
    torch.compile / DataParallel wrappers are unwrapped. Returns the path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (a ``FileExistsError``).
        OutputPathError: ``path`` is a folder (an ``OSError``).
        BadArgumentTypeError: ``model`` is not one of our models, or ``extra`` holds other
            objects (a ``TypeError``).
        CheckpointError: ``.safetensors`` asked for but the package is not installed.
    """
    path = Path(path)
    model = _unwrap_model(model)
    arch = type(model).__name__
    ours = ARCHITECTURES.get(arch) is type(model) and isinstance(
        getattr(model, "config", None), dict
    )
    if not ours and training is None:
        raise BadArgumentTypeError(
            f"save_checkpoint saves edsr_lab's models ({', '.join(ARCHITECTURES)}), got {arch}; "
            f"for other modules use torch.save(model.state_dict(), path)"
        )
    if path.is_dir():
        raise OutputPathError(f"{str(path)!r} is a folder; give a file name such as model.pt")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"checkpoint {str(path)!r} already exists; pass overwrite=True to replace it, "
            f"or choose another file name"
        )
    _check_primitive(extra, "extra")
    _check_primitive(training, "training")
    config = getattr(model, "config", None)
    config = dict(config) if isinstance(config, dict) else None
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    checksum = tensor_checksum(state, training)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors" and training is not None:
        raise BadArgumentError(
            f"{str(path)!r}: training checkpoints (optimizer, history, ...) are .pt files; "
            "save the model alone to .safetensors with save_checkpoint(model, path)"
        )
    if path.suffix == ".safetensors":
        save_file = _safetensors_module().save_file
        try:
            extra_json = json.dumps(extra)
        except TypeError as e:
            raise BadArgumentTypeError(
                f"extra must be JSON-serialisable for a .safetensors file ({e}); "
                f"save to a .pt path to keep tensors in extra"
            ) from e
        metadata = {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "arch": arch,
            "config": json.dumps(config),
            "extra": extra_json,
            "checksum": checksum,
        }
        # safetensors refuses tensors sharing memory; state_dict entries never do here.
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    else:
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "arch": arch,
            "config": config,
            "state_dict": state,
            "extra": extra,
            "checksum": checksum,
        }
        if training is not None:
            payload["training"] = training
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def _safetensors_module() -> Any:
    try:
        import safetensors.torch
    except ImportError as e:
        raise CheckpointError(
            "reading or writing .safetensors files needs the safetensors package: "
            "pip install safetensors (or save to a .pt path)"
        ) from e
    return safetensors.torch


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    st = _safetensors_module()
    import safetensors

    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = st.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file (truncated or "
            f"another format?): {e}; download or save it again"
        ) from e
    return tensors, metadata


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint without building the model (its checksum is verified).

    Returns ``{"format", "version", "arch", "config", "state_dict", "extra"}`` (plus
    ``"training"`` for a training checkpoint) for our ``.pt`` and ``.safetensors`` files;
    for an official (plain state dict) file ``arch`` and ``config`` come from
    :func:`infer_config` and ``extra`` is None.
    """
    path = Path(path)
    source = f"checkpoint {str(path)!r}"
    if path.suffix == ".safetensors":
        tensors, meta = _read_safetensors(path)
        if meta.get("format") == FORMAT:
            try:
                payload = {
                    "format": FORMAT,
                    "version": int(meta.get("version", "0")),
                    "arch": meta.get("arch"),
                    "config": json.loads(meta.get("config", "null")),
                    "state_dict": tensors,
                    "extra": json.loads(meta.get("extra", "null")),
                    "checksum": meta.get("checksum"),
                }
            except ValueError as e:
                raise CheckpointError(f"{source} has damaged metadata: {e}") from e
        else:
            payload = {"format": "official", "state_dict": tensors}
    else:
        obj = _torch_load(path, map_location)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            payload = dict(obj)
        else:
            payload = {"format": "official", "state_dict": obj}
    if payload["format"] == "official":
        sd = _unwrap_state_dict(payload["state_dict"], source)
        cfg = infer_config(sd, source=source)
        return {
            "format": "official",
            "version": None,
            "arch": cfg.pop("arch"),
            "config": cfg,
            "state_dict": sd,
            "extra": None,
        }
    version = payload.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{source} is edsr_lab format version {version!r}, but this edsr_lab reads up to "
            f"version {FORMAT_VERSION}; update edsr_lab"
        )
    _verify_checksum(payload, source)
    ours = payload.get("arch") in ARCHITECTURES and isinstance(payload.get("config"), dict)
    if not ours and not isinstance(payload.get("training"), dict):
        raise CheckpointError(
            f"{source} names an unknown model {payload.get('arch')!r}; "
            f"known: {', '.join(ARCHITECTURES)}"
        )
    payload["state_dict"] = _unwrap_state_dict(payload.get("state_dict"), source)
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Rebuild and load a model from our checkpoint (``.pt`` or ``.safetensors``) or an
    official EDSR-PyTorch file (delegated to :func:`load_official`'s inference).

    Returns the model in eval mode (call ``.train()`` to continue training), moved to
    ``map_location`` when that is a device. What was saved as ``extra`` is available as
    ``model.checkpoint_extra`` (None for official files); :func:`read_checkpoint` gives the
    whole record without building a model.
    """
    record = read_checkpoint(path, map_location)
    source = f"checkpoint {str(Path(path))!r}"
    cls = ARCHITECTURES.get(record["arch"])
    if cls is None or not isinstance(record["config"], dict):
        raise CheckpointError(
            f"{source} is a training checkpoint of a {record['arch']}, which is not one of "
            f"edsr_lab's models ({', '.join(ARCHITECTURES)}), so it cannot be rebuilt from "
            "the file: build that model yourself, then load_weights(model, path)"
        )
    model = _build_checked(record["arch"], record["config"], record["state_dict"], source)
    _strict_load(model, record["state_dict"], source)
    model.checkpoint_extra = record["extra"]
    model.eval()
    return _to_device(model, map_location)


def _build_checked(
    arch: str, config: dict, sd: Mapping[str, torch.Tensor], source: str
) -> nn.Module:
    """``cls(**config)`` once the config is known to fit the file's tensors.

    Official-layout models are checked by :func:`_check_config` (bounded by the tensors,
    so a hostile config cannot make it allocate without bound); other registered models
    are first built on the meta device (shapes only, no memory) and compared.
    """
    info = architecture(arch)
    assert info is not None  # read_checkpoint refused unknown architectures
    try:
        if info.official_layout:
            _check_config(arch, config, sd, source)
        else:
            with torch.device("meta"):
                problems = _mismatches(info.cls(**config).state_dict(), sd)
            if problems:
                raise CheckpointError(
                    f"{source}: its config {config!r} builds a {arch} whose tensors differ from "
                    f"the file's ({'; '.join(problems)}), so the file is damaged or was "
                    "edited; download or save it again"
                )
        return info.cls(**config)
    except (TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{source}: its config {config!r} cannot build {arch}: {e}") from e
