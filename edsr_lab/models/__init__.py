"""The networks of the course and their weights.

* :class:`SRResNet` (Ledig et al. 2017), :class:`EDSR` and :class:`MDSR` (Lim et al. 2017),
  with the paper's presets :func:`srresnet`, :func:`edsr_baseline`, :func:`edsr`,
  :func:`mdsr_baseline`, :func:`mdsr` (Table 1) and :func:`count_parameters`.
* The registry (:mod:`edsr_lab.models.registry`): every preset by name,
  :func:`build_model` (``build_model("edsr_baseline", 4)``), :func:`model_names`,
  :func:`is_multiscale`; a new model is one file plus one :func:`register_model` line.
* Building blocks in :mod:`edsr_lab.models.common` (MeanShift, ResBlock, Upsampler).
* Weights in :mod:`edsr_lab.models.checkpoints`: official EDSR-PyTorch files
  (:func:`load_official`), our own format (:func:`save_checkpoint`, :func:`load_checkpoint`)
  and x2 -> x3/x4 initialisation (:func:`init_from`); :func:`load_official` also reads
  BasicSR EDSR files, converted by :mod:`edsr_lab.models.convert`.

Every model maps float (N, C, H, W) in [0, 1] to (N, C, s*H, s*W), about [0, 1] and not
clamped; the x255 scaling and the DIV2K mean shift happen inside.
"""

# The model files first, in the paper's order: importing them registers their presets
# (model_names() lists them in this order).
from edsr_lab.models.srresnet import SRResNet, srresnet  # noqa: I001 - order matters
from edsr_lab.models.edsr import EDSR, edsr, edsr_baseline
from edsr_lab.models.mdsr import MDSR, mdsr, mdsr_baseline
from edsr_lab.models.checkpoints import (
    ARCHITECTURES,
    TransferReport,
    infer_config,
    init_from,
    load_checkpoint,
    load_official,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from edsr_lab.models.common import (
    GRAY_MEAN,
    MeanShift,
    ResBlock,
    SRModel,
    Upsampler,
    check_input,
    count_parameters,
    default_conv,
)
from edsr_lab.models.registry import (
    build_model,
    get_model,
    is_multiscale,
    model_names,
    register_model,
)

__all__ = [
    "ARCHITECTURES",
    "EDSR",
    "GRAY_MEAN",
    "MDSR",
    "MeanShift",
    "ResBlock",
    "SRModel",
    "SRResNet",
    "TransferReport",
    "Upsampler",
    "build_model",
    "check_input",
    "count_parameters",
    "default_conv",
    "edsr",
    "edsr_baseline",
    "get_model",
    "infer_config",
    "init_from",
    "is_multiscale",
    "load_checkpoint",
    "load_official",
    "load_weights",
    "mdsr",
    "mdsr_baseline",
    "model_names",
    "read_checkpoint",
    "register_model",
    "save_checkpoint",
    "srresnet",
]
