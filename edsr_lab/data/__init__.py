"""Data for the course: bundled samples, DIV2K, your own images, patches, benchmark sets.

- :mod:`~edsr_lab.data.samples`: the small CC0/public-domain images in ``data/samples``.
- :mod:`~edsr_lab.data.div2k`: find, check, download or build DIV2K-layout folders.
- :mod:`~edsr_lab.data.patches`: random aligned LR/HR patches with the 8 dihedral
  augmentations, made on the device from uint8 images held in memory.
- :mod:`~edsr_lab.data.pairs`: :func:`training_pairs`, the one call notebooks use to get
  their data (DIV2K if present, else the mini-DIV2K made from the samples).
- :mod:`~edsr_lab.data.multiscale`: MDSR's batches, each at one randomly drawn scale.
- :mod:`~edsr_lab.data.folder`: train on any folder of HR images (fixed held-out split,
  LR made with MATLAB bicubic).
- :mod:`~edsr_lab.data.benchmarks`: the paper's Table 3 sets (Set5, Set14, B100, Urban100)
  and DIV2K valid for ``evaluate``: download, layout checks, (HR, LR) pairs.
"""

from edsr_lab.data.div2k import (
    DEFAULT_PARTS,
    DIV2K_PARTS,
    DIV2K_URL,
    download_div2k,
    find_pairs,
    load_pairs,
    make_div2k_layout,
    mini_div2k,
    safe_extract,
)
from edsr_lab.data.multiscale import MultiScaleSampler
from edsr_lab.data.pairs import div2k_available, training_pairs
from edsr_lab.data.patches import PatchSampler, center_crop_pair, dihedral, inverse_dihedral
from edsr_lab.data.samples import list_samples, load_sample, sample_names, sample_path

__all__ = [
    "DEFAULT_PARTS",
    "DIV2K_PARTS",
    "DIV2K_URL",
    "MultiScaleSampler",
    "PatchSampler",
    "center_crop_pair",
    "dihedral",
    "div2k_available",
    "download_div2k",
    "find_pairs",
    "inverse_dihedral",
    "list_samples",
    "load_pairs",
    "load_sample",
    "make_div2k_layout",
    "mini_div2k",
    "safe_extract",
    "sample_names",
    "sample_path",
    "training_pairs",
]
