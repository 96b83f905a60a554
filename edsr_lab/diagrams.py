"""Block diagrams of the networks, drawn by code from the models themselves.

Lim et al. 2017 explain EDSR with pictures: Fig. 2 compares residual blocks, Fig. 3 draws
the single-scale network, Fig. 5 the multi-scale one. These functions draw the same kind of
picture with matplotlib patches, reading what they show from a model instance (its layers,
``config``, block count, features, residual scaling, scales) rather than from a fixed
drawing, so a picture of ``EDSR(8, 32, 3)`` shows 8 blocks, 32 features and an x3 upsampler:

* :func:`residual_blocks` -- residual blocks side by side (default: SRResNet's
  conv-BN-PReLU-conv-BN and EDSR's conv-ReLU-conv x res_scale);
* :func:`network` -- a whole single-scale EDSR (or SRResNet): mean shift, head, the B
  residual blocks and their conv, the global skip, the upsampler and the tail; with
  ``scales`` the upsampler of each scale is drawn beside it;
* :func:`mdsr` -- MDSR: per-scale pre-processing, the shared body, per-scale upsamplers.

Each returns an :class:`edsr_lab.viz.Figure` (not registered with pyplot; Jupyter shows it
when it is the last value of a cell; ``fig.savefig(...)`` in a script). Module reprs
(``print(model)``) list layers; these show the data flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from torch import nn

from edsr_lab.errors import BadArgumentTypeError
from edsr_lab.viz import Figure

__all__ = ["layer_label", "mdsr", "network", "residual_blocks"]

COLOURS = {
    "conv": "#a8c8e8",
    "norm": "#f4b6b6",
    "act": "#c9e7c1",
    "scale": "#f4d6a0",
    "shuffle": "#d9c8ef",
    "mean": "#e6e6e6",
    "shared": "#f4d6a0",
}


def layer_label(layer: nn.Module) -> tuple[str, str]:
    """A short label and a colour key for one layer (``("conv 3x3\\n64->64", "conv")``)."""
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size
        return f"conv {k[0]}x{k[1]}\n{layer.in_channels}\u2192{layer.out_channels}", "conv"
    if isinstance(layer, nn.BatchNorm2d):
        return "BN", "norm"
    if isinstance(layer, nn.PReLU):
        return "PReLU", "act"
    if isinstance(layer, nn.ReLU):
        return "ReLU", "act"
    if isinstance(layer, nn.LeakyReLU):
        return "LeakyReLU", "act"
    if isinstance(layer, nn.PixelShuffle):
        return f"pixel\nshuffle x{layer.upscale_factor}", "shuffle"
    if isinstance(layer, nn.ConvTranspose2d):
        return f"deconv {layer.kernel_size[0]}x{layer.kernel_size[1]}", "conv"
    return type(layer).__name__, "mean"


# ------------------------------------------------------------------------ drawing kit


def _box(
    ax: Any,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str,
    kind: str,
    fontsize: float = 8,
    lw: float = 1.0,
) -> None:
    """A rounded box with its lower-left corner at (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=COLOURS.get(kind, kind),
            ec="k",
            lw=lw,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], **kw: Any) -> None:
    style = {"arrowstyle": "-|>", "mutation_scale": 9, "lw": 0.9, "color": "k", **kw}
    ax.add_patch(FancyArrowPatch(start, end, shrinkA=0, shrinkB=0, **style))


def _node(ax: Any, x: float, y: float, text: str, r: float = 0.22) -> None:
    ax.add_patch(Circle((x, y), r, fc="white", ec="k", lw=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=10)


def _figure(w: float, h: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(w, h))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    return fig, ax


def _residual_blocks_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.body if hasattr(m, "res_scale") and hasattr(m, "body")]


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ------------------------------------------------------------------- residual blocks


def _draw_block(ax: Any, block: nn.Module, x0: float, title: str) -> None:
    """One residual block, top to bottom, in a column 2.6 wide starting at x0."""
    layers = list(block.body)
    res_scale = float(getattr(block, "res_scale", 1.0))
    steps = [layer_label(layer) for layer in layers]
    if res_scale != 1.0:
        steps.append((f"\u00d7 {res_scale:g}\n(res_scale)", "scale"))
    w, h, gap = 1.6, 0.62, 0.28
    cx = x0 + 1.0
    top = 0.0
    ax.text(cx + 0.3, top + 0.75, title, ha="center", va="bottom", fontsize=9, weight="bold")
    _arrow(ax, (cx, top + 0.45), (cx, top))
    y = top
    for text, kind in steps:
        _box(ax, cx - w / 2, y - h, w, h, text, kind)
        y -= h
        _arrow(ax, (cx, y), (cx, y - gap))
        y -= gap
    plus_y = y - 0.22
    _node(ax, cx, plus_y, "+")
    _arrow(ax, (cx, plus_y - 0.22), (cx, plus_y - 0.7))
    # the skip: from the input, round the right side, into the addition
    skip_x = cx + w / 2 + 0.35
    ax.plot([cx, skip_x, skip_x], [top + 0.25, top + 0.25, plus_y], color="k", lw=0.9)
    _arrow(ax, (skip_x, plus_y), (cx + 0.22, plus_y))
    ax.text(skip_x + 0.08, (top + plus_y) / 2, "skip", rotation=90, va="center", fontsize=8)
    ax.text(
        cx,
        plus_y - 0.85,
        f"{_n_params(block):,} parameters\nno activation after +",
        ha="center",
        va="top",
        fontsize=7.5,
    )


def residual_blocks(
    blocks: Sequence[nn.Module] | None = None, titles: Sequence[str] | None = None
) -> Figure:
    """Residual blocks side by side, each drawn from its layers.

    Args:
        blocks: :class:`edsr_lab.models.ResBlock` instances (anything with a ``body`` of
            layers and a ``res_scale``), e.g. ``srresnet(2).body[0]``. Default: SRResNet's
            block (64 features, conv-BN-PReLU-conv-BN) and EDSR's (256 features,
            conv-ReLU-conv, residual scaling 0.1), as in the paper's Fig. 2.
        titles: one per block (default: "SRResNet block" / "EDSR block" for the defaults,
            else "block 1", "block 2", ...).
    """
    from edsr_lab.models import ResBlock

    if blocks is None:
        with torch.device("meta"):  # shapes only: nothing allocated
            blocks = [ResBlock(64, bn=True, act="prelu"), ResBlock(256, res_scale=0.1)]
        titles = titles or ["SRResNet block", "EDSR block"]
    blocks = list(blocks)
    for b in blocks:
        if not (isinstance(b, nn.Module) and isinstance(getattr(b, "body", None), nn.Sequential)):
            raise BadArgumentTypeError(
                f"residual_blocks draws residual blocks such as edsr_lab.models.ResBlock "
                f"(a module with a .body of layers), got {type(b).__name__}"
            )
    titles = list(titles or [f"block {i + 1}" for i in range(len(blocks))])
    depth = max(len(b.body) + (getattr(b, "res_scale", 1.0) != 1.0) for b in blocks)
    fig, ax = _figure(2.7 * len(blocks), 1.3 + 0.95 * depth)
    for i, (b, t) in enumerate(zip(blocks, titles, strict=True)):
        _draw_block(ax, b, 2.8 * i, t)
    ax.set_xlim(-0.2, 2.8 * len(blocks))
    ax.set_ylim(-0.9 * depth - 2.2, 1.4)
    ax.set_aspect("equal")
    return fig


# ----------------------------------------------------------------------- whole EDSR


def _upsampler_steps(up: nn.Module) -> list[tuple[str, str]]:
    return [layer_label(layer) for layer in up]


def _upsampler_for(model: nn.Module, scale: int) -> nn.Module:
    """The model's upsampler, or the one the same network has at another scale."""
    if getattr(model, "scale", None) == scale:
        return model.tail[0]
    with torch.device("meta"):  # shapes only
        return type(model)(**{**model.config, "scale": scale}).tail[0]


def _block_layers(blocks: Sequence[nn.Module]) -> str:
    """The layer kinds of the first residual block, e.g. ``conv-ReLU-conv`` (or "none")."""
    if not blocks:
        return "none"
    return "-".join(layer_label(layer)[0].split("\n")[0].split(" ")[0] for layer in blocks[0].body)


def _mean_box(ax: Any, x: float, y: float, h: float, *, add: bool) -> None:
    """The mean shift at the input (x255, minus the DIV2K mean) or the output (undone)."""
    text = "+ mean\n\u00f7 255\n(add_mean)" if add else "x \u00b7 255\n\u2212 mean\n(sub_mean)"
    _box(ax, x, y, 1.1, h, text, "mean", 7.5)


def _global_skip(ax: Any, x0: float, plus_x: float, y: float, skip_y: float, label_x: float):
    """The global skip: up from ``x0`` at height ``y``, over the body at ``skip_y`` and down
    into the ``+`` node at ``plus_x``."""
    ax.plot([x0, x0, plus_x, plus_x], [y, skip_y, skip_y, y + 0.22], color="k", lw=0.9)
    ax.text((label_x + plus_x) / 2, skip_y + 0.08, "global skip", ha="center", fontsize=8)


def _draw_body(
    ax: Any, model: nn.Module, blocks: list[nn.Module], x: float, y: float, h: float
) -> float:
    """EDSR's body from ``x``: the stack of blocks, the layers after them, the ``+`` node
    of the global skip (its x is returned)."""
    feats = int(model.config["n_feats"])
    res_scale = _res_scale(model, blocks)
    for k in (2, 1):  # a stack of identical blocks
        ax.add_patch(
            FancyBboxPatch(
                (x + 0.08 * k, y + 0.08 * k),
                2.4,
                h,
                boxstyle="round,pad=0.02",
                fc="#dde9f5",
                ec="k",
                lw=0.6,
            )
        )
    scale_txt = f" \u00d7 {res_scale:g}" if res_scale != 1.0 else ""
    body_params = sum(_n_params(b) for b in blocks)
    text = (
        f"{len(blocks)} \u00d7 ResBlock\n{_block_layers(blocks)}{scale_txt}\n{feats} features"
        f"\n{body_params:,}"
    )
    _box(ax, x, y, 2.4, h, text, "#dde9f5", 7.5)
    x += 2.4 + 0.3
    _arrow(ax, (x - 0.3, y + h / 2), (x, y + h / 2))
    for layer in list(model.body)[len(blocks) :]:
        text, kind = layer_label(layer)
        _box(ax, x, y, 1.0, h, text, kind, 7.5)
        x += 1.0 + 0.3
        _arrow(ax, (x - 0.3, y + h / 2), (x, y + h / 2))
    plus_x = x + 0.22
    _node(ax, plus_x, y + h / 2, "+")
    return plus_x


def _draw_upsamplers(
    ax: Any, model: nn.Module, scales: list[int], x: float, y: float, h: float
) -> tuple[float, float, float]:
    """One lane per scale from ``x``, the model's own in bold; returns where the model's
    own lane ends, its height, and where the longest lane ends."""
    up_x = x + 0.45
    own_end, own_y, longest = up_x, y, 0
    for i, s in enumerate(scales):
        lane_y = y - i * (h + 0.35)
        steps = _upsampler_steps(_upsampler_for(model, s))
        longest = max(longest, len(steps))
        own = s == model.scale
        lx = up_x
        for text, kind in steps:
            _box(ax, lx, lane_y + 0.15, 1.05, h - 0.3, text, kind, 7, lw=1.6 if own else 0.6)
            lx += 1.15
        ax.text(
            up_x,
            lane_y + h - 0.1,
            f"upsampler x{s}" + (" (this model)" if own else ""),
            ha="left",
            va="bottom",
            fontsize=7.5,
            weight="bold" if own else "normal",
        )
        _arrow(ax, (x, y + h / 2), (up_x, lane_y + h / 2), color="k" if own else "0.6")
        if own:
            own_end, own_y = lx - 0.1, lane_y
    return own_end, own_y, up_x + 1.15 * longest


def _res_scale(model: nn.Module, blocks: list[nn.Module]) -> float:
    default = getattr(blocks[0], "res_scale", 1.0) if blocks else 1.0
    return float(model.config.get("res_scale", default))


def network(model: nn.Module, scales: Sequence[int] | None = None) -> Figure:
    """A single-scale EDSR (or SRResNet), left to right, drawn from ``model``.

    Shows the mean shift (x255 and minus the DIV2K mean; added back at the end), the head
    convolution, the residual body as ``B x block`` (with the block's layers and residual
    scaling), the conv after the blocks, the global skip, the upsampler stages (conv to
    s^2 F channels and pixel shuffle) and the tail convolution, with parameter counts.

    Args:
        model: an :class:`edsr_lab.models.EDSR` or ``SRResNet`` (e.g. ``edsr_baseline(2)``;
            build big ones under ``torch.device("meta")`` to draw them without memory).
        scales: also draw the upsampler the same network would have at these scales
            (the model's own is marked); default only the model's.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "scale" not in config or not hasattr(model, "head"):
        raise BadArgumentTypeError(
            f"network draws a single-scale EDSR or SRResNet, got {type(model).__name__}; "
            "use edsr_lab.diagrams.mdsr for MDSR"
        )
    blocks = _residual_blocks_of(model)
    n_blocks, feats = len(blocks), int(config["n_feats"])
    res_scale = _res_scale(model, blocks)
    scales = list(scales or [model.scale])
    if model.scale not in scales:
        scales.append(model.scale)
    scales = sorted(scales)

    fig, ax = _figure(13.5, 2.6 + 0.9 * len(scales))
    h, y = 1.2, 0.0
    _mean_box(ax, 0.0, y, h, add=False)
    _arrow(ax, (1.1, y + h / 2), (1.4, y + h / 2))
    x = 1.4
    head = "\n".join(layer_label(layer)[0].replace("\n", " ") for layer in model.head)
    _box(ax, x, y, 1.5, h, f"head\n{head}\n{_n_params(model.head):,}", "conv", 7)
    head_out = x + 1.5
    _arrow(ax, (head_out, y + h / 2), (head_out + 0.5, y + h / 2))
    plus_x = _draw_body(ax, model, blocks, head_out + 0.5, y, h)
    skip_y = y + h + 0.5
    _global_skip(ax, head_out + 0.25, plus_x, y + h / 2, skip_y, label_x=head_out)
    own_end, own_y, end = _draw_upsamplers(ax, model, scales, plus_x + 0.22, y, h)
    tail_layers = list(model.tail)[1:]
    tx = end + 0.35
    tail = "\n".join(layer_label(layer)[0].replace("\n", " ") for layer in tail_layers)
    tail_params = _n_params(nn.Sequential(*tail_layers))
    _box(ax, tx, own_y, 1.5, h, f"tail\n{tail}\n{tail_params:,}", "conv", 7)
    _arrow(ax, (own_end, own_y + h / 2), (tx, own_y + h / 2))
    _arrow(ax, (tx + 1.5, own_y + h / 2), (tx + 1.8, own_y + h / 2))
    _mean_box(ax, tx + 1.8, own_y, h, add=True)
    name = type(model).__name__
    rs = f", res_scale {res_scale:g}" if "res_scale" in config else ""
    ax.set_title(
        f"{name} x{model.scale}: {n_blocks} blocks, {feats} features{rs}, "
        f"{_n_params(model):,} trainable parameters",
        fontsize=9,
    )
    ax.set_xlim(-0.2, tx + 3.1)
    ax.set_ylim(y - (len(scales) - 1) * (h + 0.35) - 0.3, skip_y + 0.5)
    ax.set_aspect("equal")
    return fig


# ----------------------------------------------------------------------------- MDSR


def mdsr(model: nn.Module) -> Figure:
    """MDSR, drawn from ``model``: one lane per scale through the scale-specific parts
    (pre-processing after the head, upsampler before the tail), meeting in the shared
    head, body (B residual blocks and the global skip) and tail. Parameter counts on
    every part; shared parts in orange, per-scale parts in blue.

    Args:
        model: an :class:`edsr_lab.models.MDSR` (e.g. ``mdsr_baseline()``; build it under
            ``torch.device("meta")`` to draw it without allocating weights).
    """
    if not (hasattr(model, "pre_process") and hasattr(model, "upsample")):
        raise BadArgumentTypeError(
            f"mdsr draws an MDSR (with pre_process and upsample per scale), got "
            f"{type(model).__name__}; use edsr_lab.diagrams.network for EDSR"
        )
    scales = list(model.scales)
    n = len(scales)
    blocks = _residual_blocks_of(model)
    feats = int(model.config["n_feats"])
    lane_h, h = 1.25, 1.0
    top = (n - 1) * lane_h
    mid = top / 2
    fig, ax = _figure(15.5, 1.8 + 1.05 * n)
    _mean_box(ax, -1.5, mid, h, add=False)
    _arrow(ax, (-0.4, mid + h / 2), (0.0, mid + h / 2))
    x = 0.0
    _box(
        ax,
        x,
        mid,
        1.3,
        h,
        f"head (shared)\nconv 3x3\n3\u2192{feats}\n{_n_params(model.head):,}",
        "shared",
        7.5,
    )
    head_out = x + 1.3
    x = head_out + 0.6
    for i, s in enumerate(scales):
        ly = top - i * lane_h
        pre = model.pre_process[i]
        kinds = [f"{m.body[0].kernel_size[0]}x{m.body[0].kernel_size[1]}" for m in pre]
        label = f"x{s} pre-process\n{len(kinds)} \u00d7 ResBlock {kinds[0]}\n{_n_params(pre):,}"
        _arrow(ax, (head_out, mid + h / 2), (x, ly + h / 2))
        _box(ax, x, ly, 2.0, h, label, "conv", 7.5)
    x_pre_end = x + 2.0
    bx = x_pre_end + 0.6
    body_h = top + h
    for i in range(n):
        ly = top - i * lane_h
        _arrow(ax, (x_pre_end, ly + h / 2), (bx, mid + h / 2))
    block_layers = _block_layers(blocks)
    body_params = _n_params(model.body)
    _box(
        ax,
        bx,
        mid - (body_h - h) / 2,
        2.6,
        body_h,
        f"body (shared)\n{len(blocks)} \u00d7 ResBlock 3x3\n{block_layers}\n+ conv 3x3\n"
        f"{feats} features\n{body_params:,}",
        "shared",
        7.5,
    )
    plus_x = bx + 2.6 + 0.45
    _arrow(ax, (bx + 2.6, mid + h / 2), (plus_x - 0.22, mid + h / 2))
    _node(ax, plus_x, mid + h / 2, "+")
    skip_y = mid + body_h / 2 + h / 2 + 0.35
    _global_skip(ax, bx - 0.3, plus_x, mid + h / 2, skip_y, label_x=bx)
    ux = plus_x + 0.7
    for i, s in enumerate(scales):
        ly = top - i * lane_h
        up = model.upsample[i]
        stages = ", ".join(layer_label(m)[0].replace("\n", " ") for m in up)
        stages = stages.replace(", conv", "\nconv")
        _arrow(ax, (plus_x + 0.22, mid + h / 2), (ux, ly + h / 2))
        _box(ax, ux, ly, 2.7, h, f"x{s} upsampler\n{stages}\n{_n_params(up):,}", "conv", 6.5)
    tx = ux + 2.7 + 0.6
    for i in range(n):
        ly = top - i * lane_h
        _arrow(ax, (ux + 2.7, ly + h / 2), (tx, mid + h / 2))
    _box(
        ax,
        tx,
        mid,
        1.3,
        h,
        f"tail (shared)\nconv 3x3\n{feats}\u21923\n{_n_params(model.tail):,}",
        "shared",
        7.5,
    )
    ax.set_title(
        f"MDSR: scales {', '.join(f'x{s}' for s in scales)}; {len(blocks)} shared "
        f"blocks, {feats} features, {_n_params(model):,} trainable parameters. "
        "model(x, scale) takes one lane.",
        fontsize=9,
    )
    _arrow(ax, (tx + 1.3, mid + h / 2), (tx + 1.7, mid + h / 2))
    _mean_box(ax, tx + 1.7, mid, h, add=True)
    ax.set_xlim(-1.7, tx + 3.0)
    ax.set_ylim(-0.3, skip_y + 0.5)
    ax.set_aspect("equal")
    return fig
