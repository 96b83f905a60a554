"""edsr_lab: reproduce EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017) step by step.

One tensor convention everywhere: float32 tensors shaped (C, H, W) or (N, C, H, W) with
values in [0, 1]. The models do the paper's [0, 255] scaling and mean shift inside.

Modules:

- images: ``io`` (read/write images), ``png`` (16-bit PNG details), ``resize``
  (MATLAB-compatible bicubic), ``validate`` (the shared checks of image tensors),
  ``metrics`` (the paper's PSNR/SSIM protocols);
- models and weights: ``models`` (SRResNet, EDSR, MDSR, the registry of presets,
  checkpoints), ``weights`` (pretrained weights by name: official and the course's own),
  ``losses`` (the training losses, one table);
- data: ``data`` (samples, DIV2K, patches, multi-scale batches, any image folder, the
  benchmark sets), ``download`` (resumable, checked downloads and safe unpacking);
- training: ``train`` (the loop, its settings, checkpoints, and a complete run:
  ``python -m edsr_lab train``), ``profile`` (speed, memory, FLOPs);
- results: ``inference`` (running a model: tiles, self-ensemble, scale, grey images),
  ``evaluate`` (scoring the paper's way), ``paper`` (the paper's tables as data),
  ``upscale`` (your own image and DICOM files), ``dicom`` (reading and writing DICOM
  slices), ``viz`` (figures),
  ``viewer`` (interactive comparison in a notebook);
- plumbing: ``cli`` (the command line, one module per command group), ``config``
  (quick mode, device, folders), ``files`` (atomic writes), ``paths`` (why a path cannot
  be used), ``errors`` (every exception type).
"""

# Deliberately light: importing the package loads neither torch nor Pillow, so the command
# line starts at once. Exception types live in (and are imported from) edsr_lab.errors.

__version__ = "0.1.0"

__all__ = ["__version__"]
