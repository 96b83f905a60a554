"""Settings of a training run, with the paper's recipe as the defaults.

Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution" (CVPR
Workshops 2017), Section 4.2: batches of 16 random 48x48 LR patches, L1 loss, Adam (beta1
0.9, beta2 0.999, eps 1e-8), learning rate 1e-4 halved every 2x10^5 updates; 3x10^5 updates
for the ablations (Table 2), 10^6 for the final models.

One set of fields, one validator:

- :class:`TrainConfig`: what the loop (:func:`edsr_lab.train.train`) needs;
- :class:`RunConfig` extends it with what a complete run adds (model, data, output
  folder: :func:`edsr_lab.train.run`, ``python -m edsr_lab train``). The command's options
  are its fields, and its parser reads the defaults from here.

This module imports no torch, so ``python -m edsr_lab train --help`` answers at once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from edsr_lab.errors import TrainOptionError
from edsr_lab.losses import PAPER_LOSS, get_loss, loss_names

__all__ = ["BUILTIN_MODELS", "OPTION_NAMES", "RunConfig", "TrainConfig"]

#: The package's model presets: the paper's (Table 1) and SRResNet (Ledig et al.), named
#: in ``--help``, which must not load torch. What ``--model`` accepts is the registry's
#: (:mod:`edsr_lab.models.registry`: these, and any model you register);
#: tests/test_registry.py checks that this list is the registry's own presets.
BUILTIN_MODELS = ("srresnet", "edsr_baseline", "edsr", "mdsr_baseline", "mdsr")

#: ``amp`` values: bf16 autocast where it helps ("auto"), always ("bf16"), never ("off").
AMP_MODES = ("auto", "bf16", "off")

#: Where a run keeps its training images (see ``edsr_lab.data.patches.choose_storage``).
STORAGES = ("auto", "device", "pinned", "cpu")

#: What a held-out group of a medical folder is (edsr_lab.data.medical.SPLIT_KEYS).
SPLIT_KEYS = ("patient", "series", "volume")

#: Fields whose command-line option is not ``--field-name``.
OPTION_NAMES = {"scales": "--scale", "checkpoint_every": "--save-every"}
_CHECK_BLOCKS = 4  # residual blocks RunConfig._check_model builds (on meta) to check a size


def option_name(field: str) -> str:
    """The ``train`` command's option for a RunConfig field: ``batch_size`` -> ``--batch-size``."""
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _positive(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass
class TrainConfig:
    """Settings of the training loop. Defaults are the paper's ablation recipe.

    ``batch_size`` and ``patch_size`` are not used by :func:`~edsr_lab.train.train` itself
    (the sampler makes the batches); they are here so one object describes the run, e.g.
    ``PatchSampler(hr, lr, scale, patch_size=cfg.patch_size, batch_size=cfg.batch_size)``.
    """

    # --- length ---
    iters: int = 300_000  # paper: 3e5 updates for the ablations (Table 2), 1e6 for final
    # --- data (used to build the sampler) ---
    batch_size: int = 16  # paper: 16 patches per batch
    patch_size: int = 48  # paper: 48x48 LR patches (HR patches are 48*scale)
    # --- objective ---
    loss: str = PAPER_LOSS  # paper: L1 beats L2 (MSE) in PSNR and convergence (Sec. 4.2)
    # --- optimizer: Adam exactly as the paper ---
    lr: float = 1e-4  # paper: initial learning rate 1e-4
    # paper: halved every 2e5 updates (the official code's default --decay 200, in epochs
    # of 1000 updates, halves only once: a 1e6-update official run ends at 5e-5)
    lr_decay_every: int = 200_000
    lr_gamma: float = 0.5  # "halved"
    betas: tuple[float, float] = (0.9, 0.999)  # paper: beta1 0.9, beta2 0.999
    eps: float = 1e-8  # paper: epsilon 1e-8
    # The official code takes the loss on 0..255 pixels (gradients x255 for L1, x255^2 for
    # L2), where eps weighs 255x (255^2x) less: Adam gets eps / that factor (adam_eps).
    rgb_range: float = 255.0
    grad_clip: float | None = None  # paper: none; residual scaling is its stabiliser
    # --- speed (none of these change the maths beyond rounding; benchmarks/bench_train.py) ---
    amp: str = "auto"  # "auto": bf16 autocast on a CUDA GPU that has it; "bf16"; "off"
    channels_last: bool | None = None  # None = on for CUDA (faster cuDNN convs), off on CPU
    compile: bool = False  # torch.compile: ~1.3x on a GPU, but minutes of compile time
    # --- bookkeeping ---
    log_every: int = 100  # print (and call `callback`) this often
    eval_every: int = 0  # call eval_fn every this many steps (0 = only at the end)
    spike_factor: float = 10.0  # a loss above this x the running median is a "spike"
    seed: int = 0  # seeds torch's global RNG at the start (the sampler has its own seed)
    checkpoint_every: int = 0  # save every this many steps (0 = only at the end)
    checkpoint_path: str | None = None  # where to save; None = no checkpoints
    overwrite: bool = False  # allow replacing a checkpoint that another run wrote

    @classmethod
    def paper_recipe(cls, *, final: bool = False, **overrides: Any) -> TrainConfig:
        """The paper's recipe: 3e5 updates (ablations) or, with ``final=True``, 1e6."""
        cfg = cls(iters=1_000_000 if final else 300_000)
        return dataclasses.replace(cfg, **overrides)

    @classmethod
    def quick(cls, iters: int = 200, **overrides: Any) -> TrainConfig:
        """A CPU-sized run for notebooks in quick mode: few steps, small batches.

        The learning rate stays the paper's; decay is scaled so it still happens once,
        at two thirds of the run (as 2e5 of 3e5 in the paper).
        """
        cfg = cls(
            iters=iters,
            batch_size=8,
            patch_size=32,
            lr_decay_every=max(1, (2 * iters) // 3),
            log_every=max(1, iters // 10),
        )
        return dataclasses.replace(cfg, **overrides)

    def describe(self, field: str) -> str:
        """How a message names a field and its value: ``TrainConfig.lr=0.0``."""
        return f"{type(self).__name__}.{field}={getattr(self, field)!r}"

    def validate(self) -> None:
        """Raise :class:`~edsr_lab.errors.TrainOptionError` (a ``ValueError``) naming the
        field and what would work, for the first value that cannot work."""
        self._check_loop_fields()
        if self.checkpoint_every and not self.checkpoint_path:
            raise TrainOptionError(
                f"{self.describe('checkpoint_every')} but checkpoint_path is None: say where "
                "to save, e.g. checkpoint_path='checkpoints/run.pt'"
            )

    def _check_loop_fields(self) -> None:
        name = self.describe
        if self.loss not in loss_names():  # edsr_lab.losses: the one table of losses
            raise TrainOptionError(
                f"{name('loss')}: use one of {', '.join(loss_names())} ({PAPER_LOSS}: the paper's)"
            )
        if self.amp not in AMP_MODES:
            raise TrainOptionError(f"{name('amp')}: use 'auto', 'bf16' or 'off'")
        for f in ("iters", "batch_size", "patch_size", "lr_decay_every", "log_every"):
            if not _whole(getattr(self, f), 1):
                raise TrainOptionError(f"{name(f)}: must be a whole number >= 1")
        for f in ("eval_every", "checkpoint_every"):
            if not _whole(getattr(self, f), 0):
                raise TrainOptionError(f"{name(f)}: must be a whole number >= 0 (0 = at the end)")
        for f in ("lr", "eps", "rgb_range", "lr_gamma", "spike_factor"):
            if not _positive(getattr(self, f)):
                default = getattr(TrainConfig, f)
                raise TrainOptionError(f"{name(f)}: must be a number > 0 (default {default:g})")
        if self.grad_clip is not None and not _positive(self.grad_clip):
            raise TrainOptionError(f"{name('grad_clip')}: use None (no clipping) or a number > 0")
        if not (_whole(self.seed, 0) and self.seed < 2**63):  # torch's seeds are 64-bit
            raise TrainOptionError(f"{name('seed')}: must be a whole number from 0 to 2**63 - 1")

    @property
    def loss_scale(self) -> float:
        """Factor from our loss (on [0, 1]) to the official one (on 0..rgb_range)."""
        return get_loss(self.loss).official_scale(self.rgb_range)

    @property
    def adam_eps(self) -> float:
        """The eps given to Adam: ``eps / loss_scale``, so that each update is the official
        code's (Adam is invariant to the loss scale except for eps)."""
        return self.eps / self.loss_scale

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (only primitives) for checkpoints and logs."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class RunConfig(TrainConfig):
    """A complete run (the ``train`` command's options): the loop's settings plus the model,
    the data and the output folder. Defaults: the paper's recipe (:meth:`defaults`: a short
    run in quick mode).

    ``checkpoint_path`` is the run's own (``out/last.pt``); leave it None.
    """

    model: str = "edsr_baseline"  # a registered preset (edsr_lab.models.model_names())
    scales: tuple[int, ...] = (2,)  # one scale; several (2, 3, 4) only for MDSR
    data: str | None = None  # DIV2K root or folder of HR images; None: data/DIV2K (or mini)
    init: str | None = None  # start from these weights (file, or a registry name)
    out: str = "runs/train"
    resume: bool = False  # continue the run in `out` from last.pt
    device: str | None = None  # default: CUDA if available, else CPU
    holdout: float = 0.1  # share of a plain image folder held out for validation
    # how a folder's LR is made (name[:k=v,...]: bicubic, kspace, ct), and how a folder
    # of medical volumes is held out (whole patients, series or volumes)
    degradation: str = "bicubic"
    split_by: str = "patient"
    storage: str = "auto"  # where training images live: auto, device, pinned, cpu
    n_resblocks: int | None = None  # shrink/grow the preset (quick experiments)
    n_feats: int | None = None
    # A run validates (best.pt) and saves last.pt every 1000 updates: the official code's
    # "epoch" of 1000 updates, where it validates too.
    eval_every: int = 1000
    checkpoint_every: int = 1000
    # overwrite (from TrainConfig): replace the run in `out` (only a run's own files)

    @classmethod
    def quick(cls, iters: int = 200, **overrides: Any) -> RunConfig:
        """Quick mode's defaults: the paper's recipe, shortened to minutes on a CPU.

        ``iters`` updates of 8 patches of 32x32, a validation and a ``last.pt`` every
        quarter of the run. The learning-rate schedule stays the paper's, so a run given
        more ``iters`` later does not decay early.
        """
        every = max(1, iters // 4)
        cfg = cls(
            iters=iters, batch_size=8, patch_size=32, eval_every=every, checkpoint_every=every
        )
        return dataclasses.replace(cfg, **overrides)

    @classmethod
    def defaults(cls) -> RunConfig:
        """The defaults of the current mode: :meth:`quick` when ``EDSR_LAB_QUICK=1``."""
        from edsr_lab import config  # torch-free

        return cls.quick() if config.is_quick() else cls()

    def describe(self, field: str) -> str:
        """How a message names a field: its option, as typed (``--scale 2 3``)."""
        value = getattr(self, field)
        shown = " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        return f"{option_name(field)} {shown}"

    def validate(self) -> None:
        """The loop's fields (as :meth:`TrainConfig.validate`), then the run's own."""
        self._check_loop_fields()
        name = self.describe
        scales = tuple(self.scales)
        if not scales or not all(_whole(s, 2) for s in scales):
            raise TrainOptionError(f"{name('scales')}: scales are whole numbers >= 2")
        if len(set(scales)) != len(scales):
            raise TrainOptionError(f"{name('scales')}: a scale is repeated")
        for f, low in (("n_resblocks", 0), ("n_feats", 1)):
            if getattr(self, f) is not None and not _whole(getattr(self, f), low):
                raise TrainOptionError(f"{name(f)}: must be a whole number >= {low}")
        self._check_model(scales)
        if self.storage not in STORAGES:
            raise TrainOptionError(f"{name('storage')}: use {', '.join(STORAGES)}")
        if not (isinstance(self.holdout, numbers.Real) and 0.0 < self.holdout < 1.0):
            raise TrainOptionError(f"{name('holdout')}: a fraction between 0 and 1, e.g. 0.1")
        self._check_data_options()
        if self.resume and self.overwrite:
            raise TrainOptionError("--resume and --overwrite contradict each other; pick one")
        if self.checkpoint_path is not None:
            raise TrainOptionError(
                f"checkpoint_path={self.checkpoint_path!r}: a run saves to its --out folder "
                "(last.pt); choose the folder with out= instead"
            )

    def _check_data_options(self) -> None:
        """--degradation names a degradation and its options; --split-by a group key."""
        from edsr_lab.data.degradations import parse_degradation  # needs torch
        from edsr_lab.errors import BadArgumentError

        try:
            parse_degradation(self.degradation)
        except BadArgumentError as err:
            raise TrainOptionError(f"--degradation: {err}") from None
        if self.split_by not in SPLIT_KEYS:
            raise TrainOptionError(
                f"{self.describe('split_by')}: use {', '.join(SPLIT_KEYS)} (what a held-out "
                "group is: slices of one group are never on both sides)"
            )

    def _check_model(self, scales: tuple[int, ...]) -> None:
        """The model's checks come from the registry: the name (close names listed), one
        scale or several, and whatever its class refuses (a scale its upsampler cannot
        do, a size override it does not take): it is built on the meta device, which
        allocates nothing."""
        # Here, not at the top: this module serves `--help`, which must not load torch.
        import torch

        from edsr_lab.errors import BadArgumentError
        from edsr_lab.models.registry import build_model, get_model, model_names

        try:
            spec = get_model(self.model)
        except BadArgumentError as err:
            raise TrainOptionError(f"--model {self.model}: {err}") from None
        if len(scales) > 1 and not spec.multiscale:
            several = " or ".join(n for n in model_names() if get_model(n).multiscale)
            raise TrainOptionError(
                f"--model {self.model} has one upsampler; several scales "
                f"({self.describe('scales')}) need a multi-scale model ({several}), or train "
                "one scale per run"
            )
        # At most a few blocks: the check is about what the class accepts, and constructing
        # 200,000 blocks takes minutes even on meta (the memory budget refuses such sizes).
        blocks = None if self.n_resblocks is None else min(self.n_resblocks, _CHECK_BLOCKS)
        try:
            with torch.device("meta"):
                build_model(self.model, scales, n_resblocks=blocks, n_feats=self.n_feats)
        except (TypeError, ValueError) as err:  # BadArgumentError is a ValueError
            what = f"--model {self.model} {self.describe('scales')}"
            raise TrainOptionError(f"{what}: {err}") from None

    def train_config(self, **changes: Any) -> TrainConfig:
        """The loop's part of this run, as a :class:`TrainConfig` (with ``changes``)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{**fields, **changes})

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["scales"] = list(self.scales)
        return d
