"""The networks of the course and their weights.

* :class:`SRResNet` (Ledig et al. 2017), :class:`EDSR` and :class:`MDSR` (Lim et al. 2017),
  with the paper's presets :func:`srresnet`, :func:`edsr_baseline`, :func:`edsr`,
  :func:`mdsr_baseline`, :func:`mdsr` (Table 1) and :func:`count_parameters`.
* Building blocks in :mod:`edsr_lab.models.common` (MeanShift, ResBlock, Upsampler).
* Weights in :mod:`edsr_lab.models.checkpoints`: official EDSR-PyTorch files
  (:func:`load_official`), our own format (:func:`save_checkpoint`, :func:`load_checkpoint`)
  and x2 -> x3/x4 initialisation (:func:`init_from`); :func:`load_official` also reads
  BasicSR EDSR files, converted by :mod:`edsr_lab.models.convert`.

Every model maps float (N, C, H, W) in [0, 1] to (N, C, s*H, s*W), about [0, 1] and not
clamped; the x255 scaling and the DIV2K mean shift happen inside.
"""

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
from edsr_lab.models.edsr import EDSR, edsr, edsr_baseline
from edsr_lab.models.mdsr import MDSR, mdsr, mdsr_baseline
from edsr_lab.models.srresnet import SRResNet, srresnet

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
    "check_input",
    "count_parameters",
    "default_conv",
    "edsr",
    "edsr_baseline",
    "infer_config",
    "init_from",
    "load_checkpoint",
    "load_official",
    "load_weights",
    "mdsr",
    "mdsr_baseline",
    "read_checkpoint",
    "save_checkpoint",
    "srresnet",
]
