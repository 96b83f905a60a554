"""The EDSR paper's result tables, as data, to print measured numbers beside.

Source: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017.

* ``TABLE2`` -- Lim et al. 2017, Table 2: DIV2K validation images, PSNR (dB) / SSIM on RGB
  with ``6 + scale`` border pixels cropped (our ``protocol="div2k"``), models trained for
  3x10^5 updates (the ablation setting, not the final models). Bicubic has PSNR only.
* ``TABLE3`` -- Lim et al. 2017, Table 3: Set5, Set14, B100, Urban100, PSNR (dB) / SSIM on
  the Y channel with ``scale`` border pixels cropped (our ``protocol="benchmark"``), final
  models. The EDSR baseline has no row there (it appears in Table 2 only).
* ``TABLE3_PENDING`` -- rows (model -> scales) that the paper's Table 3 has but ``TABLE3``
  does not hold yet, because their values have not been confirmed from two sources; the
  ``reproduce table3`` command marks them ``[?]`` rather than inventing numbers.

Both protocols score outputs rounded to 8 bits, as :func:`edsr_lab.evaluate.evaluate`
does. Look values up with :func:`paper_value`.
"""

from __future__ import annotations

__all__ = [
    "DATASETS",
    "SOURCE",
    "TABLE2",
    "TABLE3",
    "TABLE3_PENDING",
    "paper_model_name",
    "paper_value",
]

SOURCE = {"div2k": "Lim et al. 2017, Table 2", "benchmark": "Lim et al. 2017, Table 3"}

#: Data set keys used by ``evaluate`` (``--data``) and their display names.
DATASETS = {
    "set5": "Set5",
    "set14": "Set14",
    "b100": "B100",
    "urban100": "Urban100",
    "div2k-valid": "DIV2K valid",
}

#: Lim et al. 2017, Table 2 (DIV2K validation, RGB, crop 6 + scale): model -> scale ->
#: (PSNR dB, SSIM or None). "MDSR baseline" is the paper's "baseline (multi-scale)".
TABLE2: dict[str, dict[int, tuple[float, float | None]]] = {
    "Bicubic": {2: (31.01, None), 3: (28.22, None), 4: (26.66, None)},
    "SRResNet L2": {2: (34.40, 0.9662), 3: (30.82, 0.9288), 4: (28.92, 0.8960)},
    "SRResNet L1": {2: (34.44, 0.9665), 3: (30.85, 0.9292), 4: (28.92, 0.8961)},
    "EDSR baseline": {2: (34.55, 0.9671), 3: (30.90, 0.9298), 4: (28.94, 0.8963)},
    "MDSR baseline": {2: (34.60, 0.9673), 3: (30.91, 0.9298), 4: (28.95, 0.8962)},
    "EDSR": {2: (35.03, 0.9695), 3: (31.26, 0.9340), 4: (29.25, 0.9017)},
    "MDSR": {2: (34.96, 0.9692), 3: (31.25, 0.9338), 4: (29.26, 0.9016)},
    "EDSR+": {2: (35.12, 0.9699), 3: (31.39, 0.9351), 4: (29.38, 0.9032)},
    "MDSR+": {2: (35.05, 0.9696), 3: (31.36, 0.9346), 4: (29.36, 0.9029)},
}

#: Lim et al. 2017, Table 3 (benchmarks, Y channel, crop scale): model -> scale ->
#: data set -> (PSNR dB, SSIM).
TABLE3: dict[str, dict[int, dict[str, tuple[float, float]]]] = {
    "Bicubic": {
        2: {"set5": (33.66, 0.9299), "set14": (30.24, 0.8688), "b100": (29.56, 0.8431),
            "urban100": (26.88, 0.8403)},
        3: {"set5": (30.39, 0.8682), "set14": (27.55, 0.7742), "b100": (27.21, 0.7385),
            "urban100": (24.46, 0.7349)},
        4: {"set5": (28.42, 0.8104), "set14": (26.00, 0.7027), "b100": (25.96, 0.6675),
            "urban100": (23.14, 0.6577)},
    },
    "EDSR": {
        2: {"set5": (38.11, 0.9601), "set14": (33.92, 0.9195), "b100": (32.32, 0.9013),
            "urban100": (32.93, 0.9351)},
        3: {"set5": (34.65, 0.9282), "set14": (30.52, 0.8462), "b100": (29.25, 0.8093),
            "urban100": (28.80, 0.8653)},
        4: {"set5": (32.46, 0.8968), "set14": (28.80, 0.7876), "b100": (27.71, 0.7420),
            "urban100": (26.64, 0.8033)},
    },
    "EDSR+": {
        2: {"set5": (38.20, 0.9606), "set14": (34.02, 0.9204), "b100": (32.37, 0.9018),
            "urban100": (33.10, 0.9363)},
        4: {"set5": (32.62, 0.8984), "set14": (28.94, 0.7901), "b100": (27.79, 0.7437),
            "urban100": (26.86, 0.8080)},
    },
}  # fmt: skip

#: Rows of the paper's Table 3 not transcribed in ``TABLE3`` yet (model -> scales): their
#: values could not be checked against a second source. Move a row into ``TABLE3`` once
#: it is confirmed from the paper (arXiv 1707.02921, Table 3) and one independent copy.
TABLE3_PENDING: dict[str, tuple[int, ...]] = {
    "EDSR+": (3,),
    "MDSR": (2, 3, 4),
    "MDSR+": (2, 3, 4),
}


def paper_value(model: str, scale: int, dataset: str) -> tuple[float, float | None, str] | None:
    """The paper's (PSNR, SSIM or None, source) for a model on a data set, or None.

    Args:
        model: a row name: ``"Bicubic"``, ``"EDSR"``, ``"EDSR+"``, ``"EDSR baseline"``,
            ``"MDSR"``, ``"MDSR baseline"``, ``"SRResNet L1"`` ... (see ``TABLE2``/``TABLE3``).
        scale: 2, 3 or 4.
        dataset: a key of ``DATASETS`` (``"div2k-valid"`` reads Table 2, the others Table 3).
    """
    if dataset == "div2k-valid":
        value = TABLE2.get(model, {}).get(scale)
        return (*value, SOURCE["div2k"]) if value else None
    value = TABLE3.get(model, {}).get(scale, {}).get(dataset)
    return (*value, SOURCE["benchmark"]) if value else None


def paper_model_name(
    arch: str, n_resblocks: int, n_feats: int, self_ensemble: bool = False
) -> str | None:
    """The paper's row name for a model configuration, or None if the paper has none.

    ``("EDSR", 32, 256)`` -> ``"EDSR"``, ``("EDSR", 16, 64)`` -> ``"EDSR baseline"``,
    ``("MDSR", 80, 64)`` -> ``"MDSR"``, ``("MDSR", 16, 64)`` -> ``"MDSR baseline"``; with
    ``self_ensemble`` a ``+`` is appended (EDSR+, MDSR+; the baselines have no + rows).
    """
    arch = arch.upper()
    known = {
        ("EDSR", 32, 256): "EDSR",
        ("EDSR", 16, 64): "EDSR baseline",
        ("MDSR", 80, 64): "MDSR",
        ("MDSR", 16, 64): "MDSR baseline",
    }
    name = known.get((arch, n_resblocks, n_feats))
    if name is None:
        return None
    return name + "+" if self_ensemble else name
