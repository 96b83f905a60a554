"""Building blocks shared by SRResNet, EDSR and MDSR.

The layer layout (and therefore every ``state_dict`` key) follows the official
EDSR-PyTorch code of Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution" (CVPR Workshops 2017), so its published ``.pt`` files load with
``strict=True``:

* :class:`MeanShift` is a frozen 1x1 convolution (keys ``sub_mean.weight/bias``);
* :class:`ResBlock` keeps its layers in ``body`` (keys ``body.0`` and ``body.2`` without BN);
* :class:`Upsampler` is an ``nn.Sequential`` (keys ``tail.0.0``, and ``tail.0.2`` at x4).

Every model speaks float tensors (N, C, H, W) with values in [0, 1]; :func:`check_input`
turns the usual mistakes (a CHW tensor, an RGBA image, uint8 pixels, [0, 255] values)
into one clear message instead of a deep convolution error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from edsr_lab.config import DIV2K_MEAN
from edsr_lab.errors import BadArgumentError, BadArgumentTypeError, ModelInputError
from edsr_lab.validate import check_finite, check_tensor

#: Grey-level mean used by 1-channel models: the BT.601 luma of :data:`DIV2K_MEAN`
#: (0.299 R + 0.587 G + 0.114 B, without the 16/255 offset), which is what Pillow's
#: ``convert("L")`` computes, so it is the mean a grey image loaded by
#: ``edsr_lab.io.load_image(path, channels=1)`` of a DIV2K-like photo would have.
GRAY_MEAN = 0.299 * DIV2K_MEAN[0] + 0.587 * DIV2K_MEAN[1] + 0.114 * DIV2K_MEAN[2]

#: Upsampling methods :class:`Upsampler` knows.
UPSAMPLER_MODES = ("pixelshuffle", "deconv", "nearest_conv")

#: The scales :class:`Upsampler` can build, in words (for error messages).
SUPPORTED_SCALES = "3 and the powers of two (2, 4, 8, ...)"

#: Activation names accepted wherever an ``act`` argument takes a string.
ACTIVATIONS = ("relu", "prelu", "leaky_relu")

ActSpec = str | nn.Module | Callable[[], nn.Module] | None


def dataset_mean(n_colors: int) -> tuple[float, ...]:
    """The mean the models subtract: DIV2K's RGB mean, or its luma for 1-channel models."""
    if n_colors == 3:
        return tuple(DIV2K_MEAN)
    if n_colors == 1:
        return (GRAY_MEAN,)
    raise BadArgumentError(
        f"n_colors must be 3 (RGB) or 1 (grey), got {n_colors!r}; convert other images with "
        f"edsr_lab.io.load_image(path, channels=3 or 1)"
    )


def default_conv(
    in_channels: int, out_channels: int, kernel_size: int, bias: bool = True
) -> nn.Conv2d:
    """A stride-1 convolution padded with ``kernel_size // 2``, so H and W are kept."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def make_act(act: ActSpec, n_feats: int) -> nn.Module | None:
    """Turn an ``act`` argument into a fresh module (or ``None`` for no activation).

    ``act`` may be a name from :data:`ACTIVATIONS` ("prelu" makes a per-channel
    ``nn.PReLU(n_feats)``, as in the official code), an ``nn.Module`` (used as is: fine
    for stateless ones such as ``nn.ReLU(True)``), a zero-argument factory such as
    ``lambda: nn.GELU()`` (called once per use, so learnable activations are not shared),
    or ``None``.
    """
    if act is None:
        return None
    if isinstance(act, nn.Module):
        return act
    if isinstance(act, str):
        name = act.lower()
        if name == "relu":
            return nn.ReLU(inplace=True)
        if name == "prelu":
            return nn.PReLU(n_feats)
        if name in ("leaky_relu", "lrelu"):
            return nn.LeakyReLU(0.2, inplace=True)
        raise BadArgumentError(
            f"act={act!r} is not known; use one of {ACTIVATIONS} or an nn.Module"
        )
    if callable(act):
        module = act()
        if not isinstance(module, nn.Module):
            raise BadArgumentTypeError(
                f"the act factory returned {type(module).__name__}, not an nn.Module"
            )
        return module
    raise BadArgumentTypeError(f"act must be a name, an nn.Module, a factory or None, not {act!r}")


class MeanShift(nn.Conv2d):
    """Subtract (``sign=-1``) or add back (``sign=+1``) the dataset mean, as a 1x1 conv.

    ``y = x / std + sign * rgb_range * mean / std`` per channel. The weights are frozen
    (``requires_grad=False``, so :func:`count_parameters` leaves them out, as the paper's
    counts do) but stay in the ``state_dict`` as ``sub_mean.weight``/``sub_mean.bias``,
    the keys of the official checkpoints.

    Args:
        rgb_range: the pixel range the network computes in (255 in the paper).
        rgb_mean: per-channel mean in [0, 1]; its length sets the channel count.
        rgb_std: per-channel std (default all ones: the paper does not divide by a std).
        sign: -1 to subtract the mean, +1 to add it back.
    """

    def __init__(
        self,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_MEAN,
        rgb_std: Sequence[float] | None = None,
        sign: int = -1,
    ):
        if sign not in (-1, 1):
            raise BadArgumentError(f"sign must be -1 (subtract) or +1 (add), got {sign!r}")
        n = len(rgb_mean)
        if rgb_std is None:
            rgb_std = (1.0,) * n
        if len(rgb_std) != n:
            raise BadArgumentError(f"rgb_mean has {n} values but rgb_std has {len(rgb_std)}")
        super().__init__(n, n, kernel_size=1)
        std = torch.tensor(rgb_std, dtype=torch.float32)
        mean = torch.tensor(rgb_mean, dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(torch.eye(n).view(n, n, 1, 1) / std.view(n, 1, 1, 1))
            self.bias.copy_(sign * rgb_range * mean / std)
        self.requires_grad_(False)


class ResBlock(nn.Module):
    """Residual block ``x + res_scale * body(x)``.

    ``body`` = conv-act-conv (EDSR, ``bn=False``) or conv-BN-act-conv-BN (SRResNet,
    ``bn=True``). There is no activation after the addition (EDSR's change to the ResNet
    block). ``res_scale`` = 0.1 is the paper's residual scaling for wide models.

    Args:
        n_feats: channels in and out.
        kernel_size: size of both convolutions (3; MDSR's pre-processing uses 5).
        bias: give the convolutions a bias (True in the official code, also with BN).
        bn: add BatchNorm2d after each convolution.
        act: activation between the convolutions (see :func:`make_act`).
        res_scale: factor applied to the residual before the addition.

    Shapes: (N, n_feats, H, W) -> (N, n_feats, H, W).
    """

    def __init__(
        self,
        n_feats: int,
        kernel_size: int = 3,
        *,
        bias: bool = True,
        bn: bool = False,
        act: ActSpec = "relu",
        res_scale: float = 1.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(default_conv(n_feats, n_feats, kernel_size, bias=bias))
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            if i == 0:
                module = make_act(act, n_feats)
                if module is not None:
                    layers.append(module)
        self.body = nn.Sequential(*layers)
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:  # skip a no-op multiply (it costs memory traffic)
            res = res * self.res_scale
        return res + x

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}"


class Upsampler(nn.Sequential):
    """Enlarge feature maps by ``scale``: (N, F, H, W) -> (N, F, scale*H, scale*W).

    Modes (notebook 04 compares them):

    * ``"pixelshuffle"`` (the paper's sub-pixel convolution): per x2 stage a 3x3 conv to
      4F channels then ``PixelShuffle(2)``; x3 is one stage with 9F channels and
      ``PixelShuffle(3)``. Layer indices match the official code (``tail.0.0``, and
      ``tail.0.2`` for the second x4 stage).
    * ``"deconv"``: transposed convolutions, kernel 4 / stride 2 / padding 1 per x2 stage
      and kernel 3 / stride 3 for x3, which give exactly ``scale*H`` (prone to checkerboard
      artefacts, as Odena et al. 2016 showed).
    * ``"nearest_conv"``: nearest-neighbour resize followed by a 3x3 conv, per stage.

    ``bn`` adds BatchNorm2d and ``act`` an activation (see :func:`make_act`, e.g. "prelu"
    for SRResNet) after every stage. ``scale`` must be 3 or a power of two.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int,
        *,
        mode: str = "pixelshuffle",
        bn: bool = False,
        act: ActSpec = None,
        bias: bool = True,
    ):
        if mode not in UPSAMPLER_MODES:
            raise BadArgumentError(
                f"upsampler mode {mode!r} is not known; use one of {UPSAMPLER_MODES}"
            )
        if isinstance(scale, float) and scale.is_integer():
            scale = int(scale)
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise BadArgumentError(
                f"scale={scale!r} is not supported by the {mode} upsampler; "
                f"supported scales: {SUPPORTED_SCALES}"
            )
        if scale & (scale - 1) == 0:
            factors = [2] * int(math.log2(scale))
        elif scale == 3:
            factors = [3]
        else:
            raise BadArgumentError(
                f"scale={scale} is not supported by the {mode} upsampler; "
                f"supported scales: {SUPPORTED_SCALES}"
            )
        layers: list[nn.Module] = []
        for f in factors:
            if mode == "pixelshuffle":
                layers.append(default_conv(n_feats, f * f * n_feats, 3, bias=bias))
                layers.append(nn.PixelShuffle(f))
            elif mode == "deconv":
                if f == 2:
                    layers.append(nn.ConvTranspose2d(n_feats, n_feats, 4, 2, 1, bias=bias))
                else:
                    layers.append(nn.ConvTranspose2d(n_feats, n_feats, 3, 3, 0, bias=bias))
            else:
                layers.append(nn.Upsample(scale_factor=f, mode="nearest"))
                layers.append(default_conv(n_feats, n_feats, 3, bias=bias))
            if bn:
                layers.append(nn.BatchNorm2d(n_feats))
            module = make_act(act, n_feats)
            if module is not None:
                layers.append(module)
        super().__init__(*layers)
        self.scale = scale
        self.mode = mode


def check_input(x: object, n_colors: int, model_name: str = "the model") -> None:
    """Raise a clear error unless ``x`` is a float tensor (N, n_colors, H, W).

    The models call this first thing in ``forward``, so the common mistakes get a message
    that says what to do, instead of PyTorch's ``expected input[1, 4, H, W] to have 3
    channels``. (To see that raw error, call a layer directly, e.g. ``model.head(x)``.)

    Raises:
        ImageTypeError: ``x`` is not a tensor, or has an integer dtype (the shared check of
            :mod:`edsr_lab.validate`; also a ``TypeError``).
        ModelInputError: wrong number of dimensions, wrong channel count, or an empty image.
    """
    layout = f"(N, {n_colors}, H, W) with values in [0, 1]"
    if not isinstance(x, torch.Tensor):
        check_tensor(x, f"{model_name} input", layout)  # raises ImageTypeError
    shape = tuple(x.shape)
    if x.ndim == 3:
        raise ModelInputError(
            f"{model_name} expects a batch (N, {n_colors}, H, W) but got a 3-D tensor of shape "
            f"{shape}; add the batch dimension with x.unsqueeze(0)"
        )
    if x.ndim != 4:
        raise ModelInputError(
            f"{model_name} expects a 4-D tensor (N, {n_colors}, H, W) but got shape {shape}"
        )
    check_tensor(x, f"{model_name} input", layout)  # float dtype
    c = shape[1]
    if c != n_colors:
        got = f"({shape[0]}, {c}, {shape[2]}, {shape[3]})"
        if c == 4:
            hint = (
                "an RGBA image? load it with edsr_lab.io.load_image(path, channels=3), which "
                "composites the alpha channel on white"
            )
        elif c == 1 and n_colors == 3:
            hint = (
                "a grey image? load it with edsr_lab.io.load_image(path, channels=3), repeat it "
                "with x.expand(-1, 3, -1, -1), or use a model built with n_colors=1"
            )
        elif c == 3 and n_colors == 1:
            hint = "an RGB image? load it with edsr_lab.io.load_image(path, channels=1)"
        elif shape[3] in (1, 3, 4) and shape[1] > 4:
            hint = "channels last (N, H, W, C)? reorder with x.permute(0, 3, 1, 2)"
        else:
            hint = f"give it {n_colors}-channel images"
        raise ModelInputError(
            f"{model_name} expects {n_colors}-channel input (N, {n_colors}, H, W) but got "
            f"{got}; {hint}"
        )
    if shape[0] == 0 or shape[2] == 0 or shape[3] == 0:
        raise ModelInputError(f"{model_name} got an empty tensor of shape {shape}")


def check_value_range(x: torch.Tensor, model_name: str = "the model") -> None:
    """Raise a clear error when ``x`` holds NaN/inf or looks like [0, 255] pixels.

    One NaN pixel would otherwise make the whole output NaN (every layer mixes
    neighbours) without any error. The models call this in eval mode only (it reads values
    back from the device, which would slow a training step down); set
    ``model.check_range = False`` to skip it.

    Raises:
        NonFiniteImageError: NaN or infinite values (checked first, so an ``inf`` is not
            mistaken for [0, 255] pixels).
        ModelInputError: values above 2, i.e. [0, 255] pixels.
    """
    if x.device.type == "meta":  # shape-only runs (e.g. FLOP counting) have no values
        return
    x = x.detach()
    # One read-back for both checks: (all finite?, max).
    finite, top = torch.stack((torch.isfinite(x).all().to(x.dtype), x.amax())).tolist()
    if not finite:
        check_finite(x, f"{model_name} input")
    if top > 2.0:
        raise ModelInputError(
            f"{model_name} expects values in [0, 1] but the input reaches {top:g}: it looks "
            f"like [0, 255] pixels; divide by 255 (the model scales to 255 inside)"
        )


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model``.

    With ``trainable_only`` (the default, and how the paper counts) parameters with
    ``requires_grad=False`` -- the frozen :class:`MeanShift` layers -- are left out.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside torch.compile / DataParallel / DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def _is_compiling() -> bool:
    """True while torch.compile traces (a value read-back there would break the graph)."""
    fn = getattr(torch.compiler, "is_compiling", None)  # added in PyTorch 2.3
    return bool(fn()) if fn is not None else False


class SRModel(nn.Module):
    """Base class of the super-resolution models: the [0, 1] interface and its checks.

    Subclasses set ``n_colors``, ``rgb_range``, ``scales`` (the scales ``forward`` accepts)
    and ``config`` (the constructor arguments, primitive values only, so checkpoints can
    rebuild the model).
    """

    #: In eval mode, refuse inputs that look like [0, 255] pixels (:func:`check_value_range`).
    check_range: bool = True
    n_colors: int
    rgb_range: float
    scales: tuple[int, ...]
    config: dict

    def _check(self, x: object, scale: int | None) -> int:
        """Validate ``x`` and ``scale``; return the scale to use."""
        name = type(self).__name__
        check_input(x, self.n_colors, name)
        if self.check_range and not self.training and not _is_compiling():
            check_value_range(x, name)  # type: ignore[arg-type]
        if scale is None:
            if len(self.scales) == 1:
                return self.scales[0]
            raise BadArgumentError(
                f"{name} was built for scales {self.scales}; say which one: model(x, scale=2)"
            )
        if isinstance(scale, float) and scale.is_integer():
            scale = int(scale)
        if scale not in self.scales:
            raise BadArgumentError(
                f"{name} was built for scale(s) {self.scales} but was asked for x{scale}; "
                f"build (or load) a model for x{scale}"
            )
        return scale
