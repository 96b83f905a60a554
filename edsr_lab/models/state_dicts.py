"""State dicts: reading weight files safely, unwrapping them, and the official layout.

What any weights file needs before it meets a model, whoever wrote it:

* :func:`torch_load` reads a ``.pt`` file with ``torch.load(..., weights_only=True)``
  (unpickling a full pickle can run arbitrary code, so files holding other Python objects
  are refused) and turns every failure into one :class:`~edsr_lab.errors.CheckpointError`
  naming the file (missing, a folder, HTML instead of weights, truncated, ...);
  :func:`read_safetensors` does the same for ``.safetensors`` files.
* :func:`unwrap_state_dict` finds the tensors in what a training script saved (nested
  under ``"state_dict"``, ``"model"``, ``"params_ema"``, ...; keys prefixed by
  ``module.`` or ``_orig_mod.``).
* The official EDSR-PyTorch layout (``head``, ``body``, ``tail``, ``sub_mean``/
  ``add_mean``): :func:`infer_config` works out the model a state dict belongs to from its
  tensor names and shapes; :func:`check_config` refuses a stored config that its tensors
  contradict, *before* anything is built. BasicSR files are renamed to this layout by
  :mod:`edsr_lab.models.convert`.
* :func:`strict_load` is ``load_state_dict(strict=True)`` with an error that lists the keys
  and shapes that differ and the model the weights would fit.

Our own file format (save, read, load, checksum) is :mod:`edsr_lab.models.checkpoints`.
Importing this module does not import Pillow.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edsr_lab.errors import CheckpointError
from edsr_lab.models.common import dataset_mean
from edsr_lab.models.registry import architecture
from edsr_lab.paths import unreadable_reason

__all__ = [
    "MAX_CHECKPOINT_VALUES",
    "check_config",
    "check_file_tensors",
    "describe_config",
    "infer_config",
    "read_safetensors",
    "safetensors_module",
    "strict_load",
    "torch_load",
    "unwrap_state_dict",
]


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


#: Most values (numbers) all the tensors of one weights file may declare together: 2**30,
#: 4 GiB as float32, 25x the 43M parameters of the paper's EDSR (plus Adam's two copies in a
#: training checkpoint). A file declaring more is refused before anything is built.
MAX_CHECKPOINT_VALUES = 2**30

# Prefixes that wrappers add to every key: nn.DataParallel / DDP ("module."), torch.compile
# ("_orig_mod."), the official trainer's Model wrapper when saved whole ("model.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
# Keys under which training scripts often nest the weights.
_NESTED_KEYS = ("state_dict", "model", "params_ema", "params", "net")


# ----------------------------------------------------------------------------- reading


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
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
        obj = torch.load(path, map_location=map_location, weights_only=True)
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
    check_file_tensors(obj, f"checkpoint {str(path)!r}")
    return obj


def tensors_in(obj: Any) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of every tensor in nested dicts/lists/tuples, in a fixed order
    (dict keys sorted); names like ``/state_dict/head.0.weight``. Iterative: a deeply
    nested file cannot exhaust the recursion limit."""
    found: list[tuple[str, torch.Tensor]] = []
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, torch.Tensor):
            found.append((name, item))
        elif isinstance(item, Mapping):
            keys = sorted(item, key=str)
            stack.extend((f"{name}/{k}", item[k]) for k in reversed(keys))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{name}/{i}", v) for i, v in reversed(list(enumerate(item))))
    return found


def check_file_tensors(obj: Any, source: str) -> None:
    """Refuse tensors whose declared sizes the file does not hold, before anything is
    allocated from them (a few kB can otherwise declare gigabytes).

    * each tensor's shape and strides must lie within the bytes stored for it, and need
      no more values than stored: an expanded (stride-0) or overlapping tensor of 1
      stored number that claims 10**9 would become 10**9 real numbers when the model is
      built, copied or checksummed;
    * all tensors together declare at most :data:`MAX_CHECKPOINT_VALUES` values and at
      most twice the bytes stored (views sharing one storage count each time they are
      used).

    Raises:
        CheckpointError: one line naming the file and the tensor.
    """
    total_values = declared = 0
    stored: dict[int, int] = {}
    for name, t in tensors_in(obj):
        shown = name.lstrip("/") or "the tensor"
        if t.layout != torch.strided:
            raise CheckpointError(
                f"{source}: {shown!r} is a {t.layout} tensor; weights are plain (strided) "
                "tensors, so the file is not model weights; download or save it again"
            )
        storage = t.untyped_storage()
        size = t.element_size()
        nbytes = t.numel() * size
        if t.numel():
            span = t.storage_offset() + sum(
                (n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)
            )
            if nbytes > storage.nbytes() or (span + 1) * size > storage.nbytes():
                raise CheckpointError(
                    f"{source}: {shown!r} declares shape {tuple(t.shape)} ({t.numel():,} "
                    f"values, {_gib(nbytes)}) but the file stores {storage.nbytes():,} bytes "
                    "for it: a forged or damaged file (e.g. an expanded tensor); refused "
                    "before allocating anything; download or save it again"
                )
        total_values += t.numel()
        declared += nbytes
        stored[storage._cdata] = storage.nbytes()
    if total_values > MAX_CHECKPOINT_VALUES:
        raise CheckpointError(
            f"{source} declares {total_values:,} values in its tensors, more than the "
            f"{MAX_CHECKPOINT_VALUES:,} a model here may have (the paper's EDSR has 43M); "
            "refused before allocating anything: is it the file you meant?"
        )
    if declared > 2 * sum(stored.values()) + 2**20:
        raise CheckpointError(
            f"{source}: its tensors declare {_gib(declared)} but the file stores "
            f"{_gib(sum(stored.values()))} (many tensors are views of the same numbers): a "
            "forged or damaged file; refused before allocating anything; download or save "
            "it again"
        )


def _gib(n: float) -> str:
    if n < 2**20:
        return f"{int(n):,} bytes"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _unreadable(path: Path, e: BaseException) -> CheckpointError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return CheckpointError(
        f"checkpoint {str(path)!r} ({path.stat().st_size:,} bytes) is not a readable PyTorch "
        f"file: it is truncated (an interrupted download?) or not a .pt checkpoint at all "
        f"[{type(e).__name__}: {first[:120]}]; download or save it again"
    )


def safetensors_module() -> Any:
    """``safetensors.torch``, imported here: safetensors is an optional extra."""
    try:
        import safetensors.torch
    except ImportError as e:
        raise CheckpointError(
            "reading or writing .safetensors files needs the safetensors package: "
            "pip install safetensors (or save to a .pt path)"
        ) from e
    return safetensors.torch


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a ``.safetensors`` file; CheckpointError naming it."""
    st = safetensors_module()
    import safetensors  # present: safetensors_module() checked it (an optional extra)

    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path")
    reason = unreadable_reason(path, "checkpoint")  # a folder, empty, a FIFO, a broken link
    if reason is not None:
        raise CheckpointError(f"checkpoint {str(path)!r}: {reason}")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = st.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file (truncated or "
            f"another format?): {e}; download or save it again"
        ) from e
    check_file_tensors(tensors, f"checkpoint {str(path)!r}")
    return tensors, metadata


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Find the state dict in ``obj`` (plain, or nested under a usual key such as
    ``"state_dict"``/``"params_ema"``) and strip wrapper prefixes (``module.``, ...).

    Our own format's checksum is verified by :func:`edsr_lab.models.checkpoints.unwrap_state_dict`
    (which then calls this).
    """
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


# ------------------------------------------------------------ the official layout


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


def check_config(arch: str, config: Mapping[str, Any], sd: Mapping, source: str) -> None:
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
    if bias is None or bias.numel() == 0 or mean0 == 0 or bias.is_complex():
        return 255.0  # (complex weights are refused when loaded, with a clear message)
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


def describe_config(arch: str, config: Mapping[str, Any]) -> str:
    return f"{arch}({', '.join(f'{k}={v!r}' for k, v in config.items() if k != 'arch')})"


# ---------------------------------------------------------------------------- loading


def mismatches(own: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> list[str]:
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


def _check_values(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse what ``load_state_dict`` would load silently wrong: integer, boolean or
    complex numbers where the model has floating-point weights (cast, i.e. truncated or
    stripped of their imaginary part), and NaN/inf in a parameter (every output NaN)."""
    parameters = dict(model.named_parameters())
    for key, own in model.state_dict().items():
        have = sd[key]
        if own.is_floating_point() and (not have.is_floating_point() or have.is_complex()):
            raise CheckpointError(
                f"{source}: {key!r} holds {str(have.dtype).removeprefix('torch.')} values "
                f"where the model has {str(own.dtype).removeprefix('torch.')} weights; "
                "loading would silently change them, so the file is not model weights (or "
                "was converted wrongly); download or save it again"
            )
        if key in parameters and have.is_floating_point() and not torch.isfinite(have).all():
            raise CheckpointError(
                f"{source}: {key!r} holds NaN or infinite values (saved from a run that "
                "diverged?), so every output would be NaN; use an earlier checkpoint "
                "(e.g. best.pt) or train again"
            )


def strict_load(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(sd, strict=True)`` with a readable CheckpointError on
    mismatch (keys, shapes), on integer/complex numbers where the model's weights are
    floating point, and on NaN/inf parameters. Float64/float16 weights are loaded as the
    model's dtype."""
    problems = mismatches(model.state_dict(), sd)
    if not problems:
        _check_values(model, sd, source)
        model.load_state_dict(sd, strict=True)
        return
    cfg = getattr(model, "config", {})
    lines = [f"{source} does not fit {describe_config(type(model).__name__, cfg)}:"]
    lines += [f"  {line}" for line in problems]
    try:
        fits = infer_config(sd, source=source)
    except CheckpointError:
        lines.append("  It does not look like an EDSR/MDSR state dict at all.")
    else:
        lines.append(
            f"  The weights fit {describe_config(fits['arch'], fits)}: build that model, or let "
            f"load_official(path) build it from the file. To start an x3/x4 model from x2 "
            f"weights use init_from(load_official(path), scale)."
        )
    raise CheckpointError("\n".join(lines))
