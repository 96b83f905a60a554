"""Data for the course: bundled samples, DIV2K, your own images, patches, benchmark sets.

- :mod:`~edsr_lab.data.sources`: which data to train on, one rule for the notebooks
  (:func:`training_pairs`) and the ``train`` command: DIV2K in full mode if present, else
  the mini-DIV2K made from the samples; or a folder you name.
- :mod:`~edsr_lab.data.samples`: the small CC0/public-domain images in ``data/samples``.
- :mod:`~edsr_lab.data.div2k`: find, check, download DIV2K-layout folders, or build the
  mini-DIV2K; :mod:`~edsr_lab.data.make_dataset`: build one from your images or volumes
  (``make_div2k_layout``); :mod:`~edsr_lab.data.layout`: the layout's folder and file names.
- :mod:`~edsr_lab.data.folder`: train on any folder of HR images (fixed held-out split,
  LR made with MATLAB bicubic or a named degradation).
- :mod:`~edsr_lab.data.medical`: train on a folder of NIfTI volumes, DICOM series or
  values images (one intensity map per volume, whole patients held out); make-dataset's
  volume sources.
- :mod:`~edsr_lab.data.degradations`: how LR is made: MATLAB bicubic, MRI k-space
  truncation, a CT-like blur and noise. :mod:`~edsr_lab.data.groups`: patient-level splits.
- :mod:`~edsr_lab.data.patches`: random aligned LR/HR patches with the 8 dihedral
  augmentations, made on the device from uint8 images held in memory
  (:class:`PatchSampler`: one scale).
- :mod:`~edsr_lab.data.samplers`: whole batches on top of it: :class:`MultiScaleSampler`
  (MDSR: one random scale per batch) and :class:`StepSeededSampler` (resumable at any step,
  on any number of processes).
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
)
from edsr_lab.data.patches import PatchSampler, center_crop_pair, dihedral, inverse_dihedral
from edsr_lab.data.samplers import MultiScaleSampler, StepSeededSampler
from edsr_lab.data.samples import list_samples, load_sample, sample_names, sample_path
from edsr_lab.data.sources import choose_training_data, div2k_available, training_pairs

__all__ = [
    "DEFAULT_PARTS",
    "DIV2K_PARTS",
    "DIV2K_URL",
    "MultiScaleSampler",
    "PatchSampler",
    "StepSeededSampler",
    "center_crop_pair",
    "choose_training_data",
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
    "sample_names",
    "sample_path",
    "training_pairs",
]
