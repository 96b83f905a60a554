"""edsr_lab: reproduce EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017) step by step.

One tensor convention everywhere: float32 tensors shaped (C, H, W) or (N, C, H, W) with
values in [0, 1]. The models do the paper's [0, 255] scaling and mean shift inside.

Modules, one line each (packages end in ``/``):

images and files
    ``io``            read/write images as float32 (C, H, W) in [0, 1], any bit depth
    ``png``           16-bit PNG details Pillow does not handle
    ``stored``        image files as the numbers they store (uint16, int16, float32, stacks)
    ``tiff``          TIFF files that keep medical values exactly
    ``resize``        MATLAB-compatible bicubic, and the paper's way of making LR images
    ``validate``      the shared checks of image tensors
    ``metrics``       PSNR/SSIM exactly as the paper reports them
    ``files``         atomic writes (nothing half-written, nothing overwritten by accident)
    ``paths``         why a path cannot be read or written, in one sentence
    ``archives``      unpacking zip/tar archives safely
    ``download``      resumable, checked downloads
models and weights
    ``models/``       SRResNet, EDSR, MDSR, the registry of presets, checkpoints
    ``weights``       pretrained weights by name: official and the course's own
    ``losses``        the training losses, one table (add one with ``register_loss``)
data and training
    ``data/``         samples, DIV2K (its layout, reading it, making it from your
                      images), patches, the step-seeded sampler, image folders, the
                      benchmark sets, degradations, patient-level splits, folders of
                      medical volumes
    ``train/``        the loop, its settings, checkpoints and exact resume, logging, DDP,
                      and a complete run (``python -m edsr_lab train``)
    ``profile``       speed, memory and FLOPs of a training step
results
    ``inference``     running a model: tiles, self-ensemble, the scale, grey images
    ``evaluate``      scoring the paper's way, beside its tables
    ``evaluate_volumes`` ``evaluate`` on medical volumes: a degradation, the data range
    ``paper``         the paper's result tables as data
    ``reproduce/``    ``python -m edsr_lab reproduce``: the paper's Tables 2 and 3
    ``upscale``       super-resolving your own image, DICOM and NIfTI files: one plan
    ``upscale_stored`` the upscale of files that hold values (16-bit, integer, float, stacks)
    ``viz``           figures: images with zoomed crops, error maps, training curves
    ``viewer``        interactive comparison in a notebook
    ``gallery``       the paper's qualitative-comparison figures
    ``diagrams``      block diagrams drawn from the models themselves
    ``ledger``        the course's held-out set, protocol and ablation table (ledger.json)
    ``solutions/``    reference solutions of the notebooks' "Your turn" cells
medical images
    ``dicom``         reading and writing DICOM slices, windowing
    ``dicom_header``  what a DICOM header says: rescale, stored range, names, pydicom itself
    ``dicom_write``   derived DICOM datasets: new UIDs, series number and description, geometry
    ``dicom_series``  DICOM series, multi-frame and colour files through one intensity map
    ``nifti``         NIfTI volumes slice by slice, keeping dtype, scaling and geometry
    ``volume``        any volume slice by slice, with one intensity map and counted clipping
    ``intensity``     the one intensity policy: stored values <-> [0, 1] <-> stored values
    ``geometry``      where the voxels of a super-resolved image sit in the patient
    ``clinical``      scores a clinician would accept: per-volume PSNR/SSIM on the data range
    ``hallucination`` what super-resolution can invent or erase, made visible
plumbing
    ``cli/``          the command line, one module per command group (nothing else imports it)
    ``config``        quick mode, the device, the data and cache folders
    ``errors``        every exception type
"""

# Deliberately light: importing the package loads neither torch nor Pillow, so the command
# line starts at once. Exception types live in (and are imported from) edsr_lab.errors.

__version__ = "0.1.0"

__all__ = ["__version__"]
