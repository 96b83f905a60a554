"""Loading and saving weights: the official EDSR-PyTorch files and this package's own format.

* :func:`load_official` reads an official ``.pt`` file (a plain ``state_dict``), works out
  which model it holds (EDSR or MDSR, blocks, features, scale, colours) from the tensor
  names and shapes, builds that model and loads it with ``strict=True``.
* :func:`load_weights` loads a file or state dict into a model you built, with errors that
  say which keys are missing or have the wrong shape and which model would fit.
* :func:`init_from` starts an x3/x4 model from a trained x2 one, as the paper does.
* :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`read_checkpoint`: our format.
* :func:`read_state_dict`: the tensors of any of these files (checksum verified for ours).

Reading files safely, unwrapping state dicts and the official layout (:func:`infer_config`)
are in :mod:`edsr_lab.models.state_dicts`; the classes a checkpoint may name come from the
registry (:mod:`edsr_lab.models.registry`).

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
import os
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
from edsr_lab.models import convert
from edsr_lab.models.common import count_parameters, unwrap_model
from edsr_lab.models.registry import ARCHITECTURES, architecture, is_multiscale
from edsr_lab.models.state_dicts import (
    check_config,
    infer_config,
    mismatches,
    read_safetensors,
    safetensors_module,
    strict_load,
    tensors_in,
    torch_load,
)
from edsr_lab.models.state_dicts import unwrap_state_dict as _unwrap_plain

__all__ = [
    "ARCHITECTURES",
    "FORMAT",
    "FORMAT_VERSION",
    "LEGACY_TRAINING_FORMAT",
    "TransferReport",
    "count_parameters",
    "infer_config",
    "init_from",
    "load_checkpoint",
    "load_official",
    "load_weights",
    "read_checkpoint",
    "read_state_dict",
    "save_checkpoint",
    "tensor_checksum",
    "unwrap_model",
    "unwrap_state_dict",
    "verify_checksum",
]

# ARCHITECTURES (from the registry): the model classes our checkpoints can rebuild, by the
# class name stored in the file; a model registered with register_model is one of them.

FORMAT = "edsr_lab"
FORMAT_VERSION = 2  # 2 added "checksum" and "training"; version 1 files are still read
LEGACY_TRAINING_FORMAT = "edsr_lab.train/1"  # training checkpoints before the merge


# ----------------------------------------------------------------------------- reading


def _source_name(path_or_state_dict: Any) -> str:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        return f"checkpoint {str(Path(path_or_state_dict))!r}"
    return "the state dict"


def _describe_ours(obj: Any) -> str:
    """' (an edsr_lab training checkpoint of EDSR, step 300)' for our files, else ''."""
    if not isinstance(obj, Mapping):
        return ""
    if obj.get("format") == LEGACY_TRAINING_FORMAT:
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


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The clean state dict in ``obj``: ours (checksum verified first), or any other that
    :func:`edsr_lab.models.state_dicts.unwrap_state_dict` finds (nested, prefixed)."""
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        verify_checksum(obj, source)
        obj = obj.get("state_dict")
    return _unwrap_plain(obj, source)


def read_state_dict(path_or_state_dict: Any, map_location: Any = "cpu") -> tuple[dict, str]:
    """``(state_dict, source)`` of a file (ours, official, BasicSR as saved, safetensors) or
    a dict: clean tensor names, our checksum verified; ``source`` names it for messages."""
    source = _source_name(path_or_state_dict)
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        if path.suffix == ".safetensors":
            tensors, meta = read_safetensors(path)
            if meta.get("format") == FORMAT:
                verify_checksum({**meta, "state_dict": tensors}, source)
            obj: Any = tensors
        else:
            obj = torch_load(path, map_location)
            source += _describe_ours(obj)
    else:
        obj = path_or_state_dict
    return unwrap_state_dict(obj, source), source


# ------------------------------------------------------------------- integrity checks


def tensor_checksum(state_dict: Mapping[str, torch.Tensor], training: Any = None) -> str:
    """``"sha256:<hex>"`` of every tensor (name, dtype, shape and bytes) in ``state_dict``
    and ``training``: what our files store to detect damaged data on load."""
    h = hashlib.sha256()
    for name, t in tensors_in({"state_dict": state_dict, "training": training}):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + h.hexdigest()


def verify_checksum(payload: Mapping[str, Any], source: str) -> None:
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


# ---------------------------------------------------------------------------- loading


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
    sd, source = read_state_dict(path_or_state_dict, map_location)
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
    strict_load(model, sd, source)
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
    sd, source = read_state_dict(path_or_state_dict, map_location)
    strict_load(model, sd, source)
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
    model = unwrap_model(model)
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
        save_file = safetensors_module().save_file
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
        tensors, meta = read_safetensors(path)
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
        obj = torch_load(path, map_location)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            payload = dict(obj)
        else:
            payload = {"format": "official", "state_dict": obj}
    if payload["format"] == "official":
        sd = unwrap_state_dict(payload["state_dict"], source)
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
    verify_checksum(payload, source)
    ours = payload.get("arch") in ARCHITECTURES and isinstance(payload.get("config"), dict)
    if not ours and not isinstance(payload.get("training"), dict):
        raise CheckpointError(
            f"{source} names an unknown model {payload.get('arch')!r}; "
            f"known: {', '.join(ARCHITECTURES)}"
        )
    payload["state_dict"] = unwrap_state_dict(payload.get("state_dict"), source)
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
    strict_load(model, record["state_dict"], source)
    model.checkpoint_extra = record["extra"]
    model.eval()
    return _to_device(model, map_location)


def _build_checked(
    arch: str, config: dict, sd: Mapping[str, torch.Tensor], source: str
) -> nn.Module:
    """``cls(**config)`` once the config is known to fit the file's tensors.

    Official-layout models are checked by :func:`check_config` (bounded by the tensors,
    so a hostile config cannot make it allocate without bound); other registered models
    are first built on the meta device (shapes only, no memory) and compared.
    """
    info = architecture(arch)
    assert info is not None  # read_checkpoint refused unknown architectures
    try:
        if info.official_layout:
            check_config(arch, config, sd, source)
        else:
            with torch.device("meta"):
                problems = mismatches(info.cls(**config).state_dict(), sd)
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
