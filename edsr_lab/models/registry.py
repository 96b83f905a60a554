"""The model registry: every network preset by name, and what checkpoints need to rebuild it.

Like timm's ``@register_model`` / ``create_model``: each preset function is registered
beside its model class, and everything that offers a model by name reads the registry:
:func:`build_model` (the training run's ``--model``), :func:`model_names`, and the
checkpoint code (:data:`ARCHITECTURES`: the classes a checkpoint may name).

    >>> from edsr_lab.models import build_model, model_names
    >>> model_names()
    ('srresnet', 'edsr_baseline', 'edsr', 'mdsr_baseline', 'mdsr')
    >>> model = build_model("edsr_baseline", 4)           # the paper's preset at x4
    >>> wide = build_model("edsr_baseline", 2, n_feats=96)   # a preset, resized

How to add a model: one file plus one registration
--------------------------------------------------
1. Write ``edsr_lab/models/mynet.py`` with a class that subclasses
   :class:`edsr_lab.models.common.SRModel` (float (N, C, H, W) in [0, 1] in, ``scale``
   times larger out; attributes ``n_colors``, ``scale``/``scales`` and ``config``, the
   constructor arguments as plain values, so checkpoints can rebuild it).
2. Register each preset right under it, one decorator per preset::

       @register_model(MyNet, n_resblocks=8, n_feats=32)
       def mynet_small(scale: int = 2) -> MyNet:
           \"\"\"MyNet, small: 8 blocks, 32 features.\"\"\"
           return MyNet(n_resblocks=8, n_feats=32, scale=scale)

   (``multiscale=True`` for a model that serves several scales and takes them as
   ``scales``, as MDSR; ``official_layout=True`` only if its parameter names follow
   EDSR-PyTorch's ``head``/``body``/``tail``, which lets the checkpoint code check a
   file's stored config against its tensors with the official-layout rules).
3. Import the file in ``edsr_lab/models/__init__.py``, so the registration runs.

From then on ``build_model("mynet_small", 2)``, :func:`~edsr_lab.models.save_checkpoint`
/ :func:`~edsr_lab.models.load_checkpoint`, inference, ``train --model mynet_small`` and
the ``upscale`` command know it; ``tests/test_registry.py`` does exactly this with a toy
model (registered in the test, trained and used through ``edsr_lab.cli.main``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import nn

from edsr_lab.errors import BadArgumentError, BadArgumentTypeError, did_you_mean

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ModelSpec",
    "architecture",
    "build_model",
    "get_model",
    "is_multiscale",
    "model_names",
    "preset_of",
    "register_model",
    "unregister_model",
]


@dataclass(frozen=True)
class Architecture:
    """A model class as checkpoints know it (by its class name, stored as ``"arch"``).

    Attributes:
        cls: the ``nn.Module`` subclass; ``cls(**model.config)`` rebuilds a model.
        multiscale: the model serves several scales and is built with ``scales=``.
        official_layout: its parameter names follow EDSR-PyTorch's (head, body, tail), so
            a checkpoint's config can be checked against its tensors before building.
    """

    cls: type[nn.Module]
    multiscale: bool
    official_layout: bool

    @property
    def name(self) -> str:
        return self.cls.__name__


@dataclass(frozen=True)
class ModelSpec:
    """One registered preset.

    Attributes:
        name: the registry name (the preset function's name), e.g. ``"edsr_baseline"``.
        factory: the preset function: ``factory(scale)`` (``factory(scales)`` when
            multi-scale) -> a new model.
        architecture: its :class:`Architecture`.
        preset: the constructor arguments the preset fixes (read-only mapping).
        description: the first line of the preset function's docstring.
    """

    name: str
    factory: Callable[..., nn.Module]
    architecture: Architecture
    preset: Mapping[str, Any]
    description: str

    @property
    def cls(self) -> type[nn.Module]:
        return self.architecture.cls

    @property
    def multiscale(self) -> bool:
        return self.architecture.multiscale


_MODELS: dict[str, ModelSpec] = {}
_ARCH_INFO: dict[str, Architecture] = {}

#: Class name -> class, for every registered architecture: the ``"arch"`` values our
#: checkpoints may hold. Live: a registration adds to this very dict.
ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register_model(
    cls: type[nn.Module],
    *,
    multiscale: bool = False,
    official_layout: bool = False,
    replace: bool = False,
    **preset: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register the preset function below it under its own name.

    Args:
        cls: the class the function builds.
        multiscale: the class serves several scales (built with ``scales=``; MDSR).
        official_layout: the class's parameter names are EDSR-PyTorch's (see
            :class:`Architecture`).
        replace: replace a preset (and class) registered under the same name, e.g. when
            a notebook cell that defines and registers a model runs again.
        **preset: the constructor arguments the preset fixes (n_resblocks, n_feats,
            res_scale, ...): shown by :func:`get_model`, used by :func:`preset_of`.

    The function is returned unchanged. A name registered twice, or another class (or
    other flags) under a registered class name, raises BadArgumentError unless
    ``replace``.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise BadArgumentTypeError(f"register_model needs an nn.Module class, got {cls!r}")
    arch = Architecture(cls, bool(multiscale), bool(official_layout))
    known = _ARCH_INFO.get(arch.name)
    if known is not None and known != arch and not replace:
        raise BadArgumentError(
            f"register_model: {arch.name} is registered already as {known}; a class has "
            "one set of flags (or another class has the same name); pass replace=True "
            "to replace it"
        )

    def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _MODELS and not replace:
            raise BadArgumentError(
                f"register_model: a model named {name!r} is registered already; choose "
                "another function name, or pass replace=True (e.g. re-running a cell)"
            )
        doc = inspect.getdoc(factory) or ""
        _ARCH_INFO[arch.name] = arch
        ARCHITECTURES[arch.name] = cls
        _MODELS[name] = ModelSpec(
            name, factory, arch, MappingProxyType(dict(preset)), doc.split("\n")[0]
        )
        return factory

    return register


def unregister_model(name: str) -> None:
    """Remove the preset ``name``; its class too when no other preset uses it.

    For experiments and tests that register a model for a while.
    """
    spec = get_model(name)
    del _MODELS[name]
    if not any(s.architecture.name == spec.architecture.name for s in _MODELS.values()):
        _ARCH_INFO.pop(spec.architecture.name, None)
        ARCHITECTURES.pop(spec.architecture.name, None)


def model_names() -> tuple[str, ...]:
    """The registered preset names, in registration order (SRResNet, EDSR, MDSR)."""
    return tuple(_MODELS)


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; BadArgumentError with close names otherwise."""
    spec = _MODELS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise BadArgumentError(
            f"no model named {name!r}; {did_you_mean(name, model_names())}"
            f"known: {', '.join(model_names())}"
        )
    return spec


def architecture(arch: str | type[nn.Module] | nn.Module) -> Architecture | None:
    """The :class:`Architecture` of a class name, class or model; None if not registered
    (or another class of the same name)."""
    cls = arch if isinstance(arch, type) else None if isinstance(arch, str) else type(arch)
    info = _ARCH_INFO.get(arch if isinstance(arch, str) else cls.__name__)
    return info if info is not None and (cls is None or info.cls is cls) else None


def _scales(scale: int | Sequence[int], name: str, multiscale: bool) -> tuple[int, ...]:
    """``scale`` as a tuple of whole numbers; one only for a single-scale model."""
    items = tuple(scale) if isinstance(scale, Sequence) and not isinstance(scale, str) else (scale,)
    for s in items:
        if isinstance(s, bool) or not isinstance(s, int):
            raise BadArgumentTypeError(
                f"build_model({name!r}): scale {s!r} is not a whole number (e.g. 2)"
            )
    if not items or (len(items) > 1 and not multiscale):
        several = ", ".join(n for n in model_names() if get_model(n).multiscale)
        raise BadArgumentError(
            f"build_model({name!r}): {name} serves one scale, got {items}; for several "
            f"scales in one model use a multi-scale one ({several})"
        )
    return items


def build_model(name: str, scale: int | Sequence[int] = 2, **overrides: Any) -> nn.Module:
    """A new model: the preset ``name`` at ``scale``, optionally resized.

    Args:
        name: a registered preset (:func:`model_names`).
        scale: the upscaling factor; a multi-scale model (MDSR) takes several,
            e.g. ``(2, 3, 4)`` (a single number serves that one scale).
        **overrides: constructor arguments that replace the preset's, e.g.
            ``n_resblocks=8``; None leaves the preset's value (handy for CLI options).

    Returns:
        The model (in train mode, fresh weights), float32 on the CPU.

    Raises:
        BadArgumentError: unknown name (with close names), several scales for a
            single-scale model, or an override the class does not take.
    """
    spec = get_model(name)
    scales = _scales(scale, name, spec.multiscale)
    model = spec.factory(scales if spec.multiscale else scales[0])
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        config = getattr(model, "config", None)
        if not isinstance(config, dict):
            raise BadArgumentError(f"{name} has no config, so it cannot be resized")
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            raise BadArgumentError(
                f"build_model({name!r}): {', '.join(unknown)} is not an argument of "
                f"{spec.cls.__name__}; it takes {', '.join(config)}"
            )
        model = spec.cls(**{**config, **overrides})
    return model


def is_multiscale(model_or_name: nn.Module | str) -> bool:
    """True for a model (or registered name) that serves several scales, as MDSR.

    A registered model answers with its registration; another module with whether it
    has several ``scales``.
    """
    if isinstance(model_or_name, str):
        return get_model(model_or_name).multiscale
    info = architecture(model_or_name)
    if info is not None:
        return info.multiscale
    scales = getattr(model_or_name, "scales", None)
    return isinstance(scales, (list, tuple)) and len(scales) > 1


def _defaults(cls: type) -> dict[str, Any]:
    params = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def preset_of(model: nn.Module) -> str | None:
    """The registered preset ``model`` is an instance of (any scale), or None.

    A model matches when its class is the preset's and its ``config`` equals the class
    defaults overridden by the preset (so a resized or otherwise changed model has none).
    """
    info = architecture(model)
    config = getattr(model, "config", None)
    if info is None or not isinstance(config, Mapping):
        return None
    scale_keys = ("scale", "scales")
    mine = {k: v for k, v in config.items() if k not in scale_keys}
    for spec in _MODELS.values():
        if spec.architecture != info:
            continue
        expected = {**_defaults(spec.cls), **spec.preset}
        if all(expected.get(k, inspect.Parameter.empty) == v for k, v in mine.items()):
            return spec.name
    return None
