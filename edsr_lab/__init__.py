"""edsr_lab: reproduce EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017) step by step.

One tensor convention everywhere: float32 tensors shaped (C, H, W) or (N, C, H, W) with
values in [0, 1]. The models do the paper's [0, 255] scaling and mean shift inside.

Modules: ``io`` (read/write images), ``resize`` (MATLAB-compatible bicubic), ``metrics``
(the paper's PSNR/SSIM protocols), ``models`` (SRResNet, EDSR, MDSR, official weights),
``data`` (samples, DIV2K, patches), ``train``, ``evaluate``, ``viz``, ``config``,
``errors`` (every exception type), ``validate`` (the shared checks of image tensors).
"""

# Deliberately light: importing the package loads neither torch nor Pillow, so the command
# line starts at once. Exception types live in (and are imported from) edsr_lab.errors.

__version__ = "0.1.0"

__all__ = ["__version__"]
