"""Training patches the paper's way: random aligned LR/HR crops + the 8 dihedral transforms.

EDSR trains on 16 random 48x48 LR patches per step with their (48s)x(48s) HR partners,
each randomly flipped and rotated by multiples of 90 degrees (all 8 symmetries of the
square; no colour augmentation). A fast GPU runs the baseline model at ~350 steps/s, i.e.
~5,700 patch pairs/s: reading PNGs per step cannot keep up. :class:`PatchSampler` holds
the whole dataset in memory as uint8 (16-bit levels for medical values) and cuts, flips
and rotates a whole batch with one gather per tensor. Where the images are kept
(``storage``) is chosen from free memory (:func:`choose_storage`): on the GPU when they
fit (DIV2K's 800 HR images are about 6 GB), else in pinned (page-locked) CPU memory, from
which each batch is cut on the CPU and copied to the GPU asynchronously. Both paths draw
the same random choices from the same CPU generator, so they give identical batches for
the same seed.

:func:`dihedral` / :func:`inverse_dihedral` are the 8 transforms themselves; the geometric
self-ensemble (EDSR+) reuses them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch

from edsr_lab.config import resolve_device
from edsr_lab.data.div2k import find_pairs, load_pairs
from edsr_lab.errors import (
    BadArgumentError,
    ImageInputError,
    ImageTypeError,
    SizeMismatchError,
)
from edsr_lab.validate import check_finite

#: Where :class:`PatchSampler` may keep its images: on the training device, in pinned
#: (page-locked) CPU memory (fast asynchronous copies to a CUDA GPU), or in plain CPU memory.
STORAGES = ("device", "pinned", "cpu")

#: GPU memory :func:`choose_storage` leaves free for the model, activations and optimizer:
#: at least this many bytes, and at least ``RESERVE_FRACTION`` of the card.
RESERVE_BYTES = 4 * 2**30
RESERVE_FRACTION = 0.25

#: ``dihedral(x, k)`` for k = 0..7: ``k % 4`` quarter turns, after a left-right flip when
#: ``k >= 4``. k = 0 is the identity.
N_DIHEDRAL = 8


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < N_DIHEDRAL:
        raise BadArgumentError(f"k must be a whole number in 0..7, got {k!r}")
    return k


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply the k-th of the 8 flips/rotations to the last two dims of x (..., H, W).

    ``k % 4`` counter-clockwise quarter turns (``torch.rot90``), preceded by a left-right
    flip when ``k >= 4``. Odd ``k % 4`` swaps H and W. Any dtype and device.
    """
    k = _check_k(k)
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def inverse_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo :func:`dihedral`: ``inverse_dihedral(dihedral(x, k), k) == x``."""
    k = _check_k(k)
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    if k >= 4:
        x = x.flip(-1)
    return x


def center_crop_pair(
    hr: torch.Tensor, lr: torch.Tensor, size: int | None, scale: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The central ``size`` x ``size`` LR crop and the HR region it was made from.

    Scoring crops instead of whole images keeps quick-mode evaluation fast; the crops stay
    aligned (LR pixel (y, x) covers HR pixels (s*y .. s*y+s-1, s*x .. s*x+s-1)).

    Args:
        hr: (..., C, s*h, s*w) tensor, any dtype.
        lr: (..., C, h, w) tensor of the same image.
        size: LR crop side in pixels; None returns (hr, lr) unchanged.
        scale: the integer scale s.

    Returns:
        (hr_crop (..., C, s*size, s*size), lr_crop (..., C, size, size)), views of the inputs.
    """
    h, w = lr.shape[-2:]
    if tuple(hr.shape[-2:]) != (h * scale, w * scale):
        raise SizeMismatchError(
            f"HR {tuple(hr.shape)} is not {scale}x LR {tuple(lr.shape)}; crop HR with "
            "edsr_lab.resize.modcrop first"
        )
    if size is None:
        return hr, lr
    if not 0 < size <= min(h, w):
        raise BadArgumentError(
            f"crop size {size} must be in 1..{min(h, w)} for LR {tuple(lr.shape)}"
        )
    y, x = (h - size) // 2, (w - size) // 2
    hr_crop = hr[..., scale * y : scale * (y + size), scale * x : scale * (x + size)]
    return hr_crop, lr[..., y : y + size, x : x + size]


#: 16-bit levels are kept as int16 shifted by this (int16 gathers on every device; uint16
#: is a shell type in torch); level = stored + _SHIFT.
_SHIFT = 32768


def _as_levels(img: object, what: str, *, wide: bool = False) -> torch.Tensor:
    """Check one image: a (C, H, W) tensor, uint8, uint16 (16-bit levels) or float in
    [0, 1] (converted). ``wide``: return 16-bit levels as int16 minus 32768 (uint8 x 257,
    float rounded to 65535 levels); else uint8."""
    if not isinstance(img, torch.Tensor):
        raise ImageTypeError(f"{what} must be a torch.Tensor, got {type(img).__name__}")
    if img.dim() != 3:
        raise ImageInputError(f"{what} must be shaped (C, H, W), got {tuple(img.shape)}")
    if wide:
        if img.dtype == torch.uint16:
            levels = img.to(torch.int32)
        elif img.dtype == torch.uint8:
            levels = img.to(torch.int32) * 257
        else:
            levels = torch.round(_checked_float(img, what) * 65535.0).to(torch.int32)
        return (levels - _SHIFT).to(torch.int16)
    if img.dtype == torch.uint8:
        return img
    return torch.round(_checked_float(img, what) * 255.0).to(torch.uint8)


def _checked_float(img: torch.Tensor, what: str) -> torch.Tensor:
    """A float image in [0, 1], checked (finite, in range)."""
    if img.is_floating_point():
        check_finite(img, what)
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageInputError(
                f"{what} is float with values in [{lo:.3g}, {hi:.3g}]; need [0, 1]"
            )
        return img
    raise ImageTypeError(
        f"{what} has dtype {img.dtype}; give uint8 (0..255), uint16 (0..65535) or float in [0, 1]"
    )


def _host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def choose_storage(nbytes: int, device: str | torch.device | None) -> tuple[str, str]:
    """Where to keep ``nbytes`` of uint8 training images for training on ``device``.

    Returns ``(storage, reason)``: ``storage`` is one of :data:`STORAGES` and ``reason`` a
    sentence saying why (print it: the user should know which path was taken).

    * CPU (or MPS) training: ``"device"`` (the CPU *is* the device; nothing to copy).
    * CUDA: ``"device"`` when ``nbytes`` fits in the free GPU memory while leaving
      ``max(RESERVE_BYTES, RESERVE_FRACTION * total)`` for training itself; otherwise
      ``"pinned"`` CPU memory when the host has room for it, else plain ``"cpu"`` memory.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    mb = nbytes / 2**20
    if device.type != "cuda":
        return "device", f"{mb:.0f} MB of images kept in {device.type.upper()} memory"
    free, total = torch.cuda.mem_get_info(device)
    reserve = max(RESERVE_BYTES, int(RESERVE_FRACTION * total))
    if nbytes + reserve <= free:
        return "device", (
            f"{mb:.0f} MB of images kept on the GPU ({free / 2**30:.1f} GB free; "
            f"{reserve / 2**30:.1f} GB left for training)"
        )
    host = _host_available_bytes()
    why = (
        f"{mb:.0f} MB of images do not fit on the GPU ({free / 2**30:.1f} GB free, "
        f"{reserve / 2**30:.1f} GB kept for training)"
    )
    if host is not None and 2 * nbytes > host:
        # Pinning locks pages in RAM; with little headroom plain memory is the safer choice.
        return "cpu", f"{why}; kept in plain CPU memory ({host / 2**30:.1f} GB available)"
    return "pinned", f"{why}; kept in pinned CPU memory, batches copied to the GPU"


class PatchSampler:
    """Random aligned (LR, HR) patch batches with dihedral augmentation, all on one device.

    Args:
        hr_images: list of HR images, uint8 tensors (C, H, W) (float in [0, 1] is
            converted to uint8), or uint16 (0..65535: then every image is kept at 16 bits,
            as medical values need). Every HR image must be exactly ``scale`` times its LR.
        lr_images: the matching LR images (C, H/s, W/s).
        scale: the SR factor s.
        patch_size: LR patch side p (48 in the paper); HR patches are p*s.
        batch_size: patches per batch (16 in the paper).
        augment: apply a random one of the 8 flips/rotations to each pair.
        device: where batches are delivered (the training device; default CPU).
        storage: where the images are kept, as uint8 (DIV2K's 800 train HR images need
            ~6 GB, plus ~0.7 GB LR at x2): ``"device"`` (patches cut on the device with
            one gather), ``"pinned"`` (page-locked CPU memory; patches cut on the CPU, the
            uint8 batch copied to ``device`` asynchronously; needs CUDA), ``"cpu"`` (the
            same from plain memory), or ``"auto"`` (:func:`choose_storage` decides from
            free memory). Default ``"device"``. ``storage_reason`` says why.
        seed: seed of the sampler's own ``torch.Generator`` (on the CPU, so the same seed
            gives the same patches on any device and with any storage).

    ``sample()`` returns ``(lr, hr)`` float32 in [0, 1] on ``device``, shaped
    (B, C, p, p) and (B, C, p*s, p*s). For each of the B pairs: a uniformly random image,
    a uniformly random LR crop at (y, x) with its HR partner at (s*y, s*x), and a random
    k in 0..7 applied as :func:`dihedral` to both.

    Iterating over the sampler yields batches forever: ``for step, (lr, hr) in
    zip(range(iters), sampler)``.
    """

    def __init__(
        self,
        hr_images: Sequence[torch.Tensor],
        lr_images: Sequence[torch.Tensor],
        scale: int,
        *,
        patch_size: int = 48,
        batch_size: int = 16,
        augment: bool = True,
        device: str | torch.device | None = None,
        storage: str = "device",
        seed: int = 0,
    ):
        for name, v in (("scale", scale), ("patch_size", patch_size), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadArgumentError(f"{name} must be a whole number >= 1, got {v!r}")
        if len(hr_images) != len(lr_images):
            raise BadArgumentError(f"got {len(hr_images)} HR images but {len(lr_images)} LR images")
        if len(hr_images) == 0:
            raise BadArgumentError("no images given; PatchSampler needs at least one (HR, LR) pair")
        self.scale, self.patch_size, self.batch_size = scale, patch_size, batch_size
        self.augment = bool(augment)
        self.device = resolve_device(device) if device is not None else torch.device("cpu")
        p, s = patch_size, scale

        # 16-bit levels where any image holds them (medical values: 256 levels would be
        # 16 HU steps on a CT); DIV2K's uint8 stays uint8 (half the memory).
        images = [*hr_images, *lr_images]
        self.wide = any(isinstance(t, torch.Tensor) and t.dtype == torch.uint16 for t in images)
        hrs = [_as_levels(h, f"hr_images[{i}]", wide=self.wide) for i, h in enumerate(hr_images)]
        lrs = [_as_levels(x, f"lr_images[{i}]", wide=self.wide) for i, x in enumerate(lr_images)]
        channels = hrs[0].shape[0]
        for i, (h, x) in enumerate(zip(hrs, lrs, strict=True)):
            if h.shape[0] != channels or x.shape[0] != channels:
                raise SizeMismatchError(
                    f"image {i} has {h.shape[0]} (HR) / {x.shape[0]} (LR) channels; "
                    f"image 0 has {channels}: load all images with the same channels="
                )
            (hh, hw), (lh, lw) = h.shape[1:], x.shape[1:]
            if (hh, hw) != (s * lh, s * lw):
                raise SizeMismatchError(
                    f"image {i}: HR is {hh}x{hw} but LR is {lh}x{lw}; at x{s} the HR must be "
                    f"exactly {s * lh}x{s * lw} (remake it with edsr_lab.data.make_div2k_layout)"
                )
            if lh < p or lw < p:
                raise ImageInputError(
                    f"image {i}: LR is {lh}x{lw}, smaller than patch_size {p} (needs LR of at "
                    f"least {p}x{p}, i.e. HR {p * s}x{p * s} at x{s}); use a smaller "
                    "patch_size or drop this image"
                )
        self.channels = channels
        self.num_images = len(hrs)
        self.storage, self.storage_reason = self._pick_storage(storage, hrs, lrs)
        # Where the gather runs: next to the images.
        home = self.device if self.storage == "device" else torch.device("cpu")
        pin = self.storage == "pinned"
        # Each image set lives in one flat uint8 buffer, so one gather cuts a whole batch.
        self._lr = _Flat(lrs, home, pin=pin)
        self._hr = _Flat(hrs, home, pin=pin)
        # Per transform k: which source pixel (row, col) of the crop lands at each output
        # position. Made by transforming a grid of indices with dihedral() itself, so the
        # sampler agrees with dihedral() by construction.
        self._lr_maps = _dihedral_maps(p, home)
        self._hr_maps = _dihedral_maps(p * s, home)
        self._home = home
        self.generator = torch.Generator().manual_seed(int(seed))

    def _pick_storage(
        self, storage: str, hrs: list[torch.Tensor], lrs: list[torch.Tensor]
    ) -> tuple[str, str]:
        if storage not in (*STORAGES, "auto"):
            raise BadArgumentError(
                f"storage={storage!r}: use one of {', '.join(STORAGES)} or 'auto'"
            )
        if storage == "auto":
            nbytes = sum(t.nbytes for t in hrs) + sum(t.nbytes for t in lrs)
            return choose_storage(nbytes, self.device)
        if storage == "pinned" and not torch.cuda.is_available():
            # Page-locking needs the CUDA driver; without it there is no GPU to copy to.
            return "cpu", "storage='pinned' needs CUDA; images kept in plain CPU memory"
        return storage, f"storage={storage!r} asked for"

    # -- construction helpers

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str | Path, str | Path]],
        scale: int,
        *,
        channels: int = 3,
        **kwargs,
    ) -> PatchSampler:
        """Load (HR, LR) file pairs (see ``div2k.find_pairs``) and build a sampler."""
        hrs, lrs = load_pairs(pairs, channels, scale=scale)
        return cls(hrs, lrs, scale, **kwargs)

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        scale: int,
        *,
        split: str = "train",
        indices=None,
        channels: int = 3,
        **kwargs,
    ) -> PatchSampler:
        """Build a sampler from a DIV2K-layout folder (``div2k.find_pairs`` + load)."""
        pairs = find_pairs(root, split, scale, indices=indices)
        return cls.from_pairs(pairs, scale, channels=channels, **kwargs)

    # -- sampling

    def draw(self, n: int | None = None) -> dict[str, torch.Tensor]:
        """Draw the random choices of one batch (CPU int64 tensors of length n).

        Keys: ``image`` (index), ``y``, ``x`` (top-left of the LR crop), ``k`` (transform).
        """
        n = self.batch_size if n is None else n
        g = self.generator
        image = torch.randint(self.num_images, (n,), generator=g)
        # Uniform crop corner per image: floor(u * (number of valid corners)).
        u = torch.rand((2, n), generator=g, dtype=torch.float64)
        ny = self._lr.heights[image] - self.patch_size + 1
        nx = self._lr.widths[image] - self.patch_size + 1
        y = torch.minimum((u[0] * ny).long(), ny - 1)
        x = torch.minimum((u[1] * nx).long(), nx - 1)
        if self.augment:
            k = torch.randint(N_DIHEDRAL, (n,), generator=g)
        else:
            k = torch.zeros(n, dtype=torch.long)
        return {"image": image, "y": y, "x": x, "k": k}

    def extract(
        self, image: torch.Tensor, y: torch.Tensor, x: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut the patches for given choices (see :meth:`draw`); returns float (lr, hr).

        ``lr[b] == dihedral(lr_images[image[b]][:, y:y+p, x:x+p], k[b]) / 255`` and
        ``hr[b]`` the same for the HR crop at (s*y, s*x) of size p*s.
        """
        params = torch.stack([torch.as_tensor(t, dtype=torch.long) for t in (image, y, x, k)])
        image, y, x, k = params.to(self._home, non_blocking=True)  # one small copy
        s = self.scale
        lr = self._lr.gather(image, y, x, self._lr_maps[0][k], self._lr_maps[1][k])
        hr = self._hr.gather(image, s * y, s * x, self._hr_maps[0][k], self._hr_maps[1][k])
        if self.storage != "device":
            # Copy uint8 (4x fewer bytes than float). From pinned memory the copy is
            # asynchronous; pin_memory() uses PyTorch's caching host allocator, which keeps
            # the buffer alive until the copy is done, so nothing is overwritten in flight.
            pinned = self.storage == "pinned" and self.device.type == "cuda"
            lr, hr = (t.pin_memory() if pinned else t for t in (lr, hr))
            lr = lr.to(self.device, non_blocking=pinned)
            hr = hr.to(self.device, non_blocking=pinned)
        if self.wide:
            return lr.float().add_(_SHIFT).div_(65535.0), hr.float().add_(_SHIFT).div_(65535.0)
        return lr.float().div_(255.0), hr.float().div_(255.0)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: ``(lr, hr)`` float32 in [0, 1], (B, C, p, p) and (B, C, ps, ps)."""
        d = self.draw()
        return self.extract(d["image"], d["y"], d["x"], d["k"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.sample()

    # -- reproducibility (resume a training run with the same patch stream)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state, ``{"generator": uint8 tensor}`` (saves with a checkpoint)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor] | torch.Tensor) -> None:
        """Restore a :meth:`state_dict` (or the bare generator state older checkpoints hold)."""
        self.generator.set_state(state if isinstance(state, torch.Tensor) else state["generator"])

    def __repr__(self) -> str:
        return (
            f"PatchSampler({self.num_images} images, x{self.scale}, patch {self.patch_size}, "
            f"batch {self.batch_size}, augment={self.augment}, device={self.device}, "
            f"storage={self.storage}, {self.memory_bytes() / 2**20:.1f} MB "
            f"{'16-bit' if self.wide else 'uint8'})"
        )

    def memory_bytes(self) -> int:
        """Bytes of image data held (on the device or in CPU memory, see ``storage``)."""
        return self._lr.data.nbytes + self._hr.data.nbytes


def _dihedral_maps(p: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols), each (8, p, p) int64: source pixel of output (i, j) under transform k."""
    grid = torch.arange(p * p).view(p, p)
    idx = torch.stack([dihedral(grid, k) for k in range(N_DIHEDRAL)])
    return (idx // p).to(device), (idx % p).to(device)


class _Flat:
    """Images (C, H_i, W_i) of any sizes, concatenated into one flat uint8 buffer."""

    def __init__(self, images: Sequence[torch.Tensor], device: torch.device, pin: bool = False):
        sizes = [img.numel() for img in images]
        dtype = images[0].dtype  # uint8, or int16 holding 16-bit levels (see _SHIFT)
        self.data = torch.empty(sum(sizes), dtype=dtype, device=device, pin_memory=pin)
        offsets, start = [], 0
        for img, n in zip(images, sizes, strict=True):
            # Copy image by image, so the CPU never holds a second full copy.
            self.data[start : start + n].copy_(img.reshape(-1))
            offsets.append(start)
            start += n
        self.channels = int(images[0].shape[0])
        # CPU copies for drawing crop corners; device copies for the gather.
        self.heights = torch.tensor([int(img.shape[1]) for img in images])
        self.widths = torch.tensor([int(img.shape[2]) for img in images])
        self._offsets = torch.tensor(offsets, device=device)
        self._widths = self.widths.to(device)
        self._heights = self.heights.to(device)

    def gather(
        self,
        image: torch.Tensor,
        y: torch.Tensor,
        x: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
    ) -> torch.Tensor:
        """Crops (B, C, p, p) uint8: out[b, c, i, j] = img[image[b]][c, y+rows, x+cols]."""
        b = image.shape[0]
        w = self._widths[image].view(b, 1, 1, 1)
        plane = (self._heights[image] * self._widths[image]).view(b, 1, 1, 1)
        c = torch.arange(self.channels, device=image.device).view(1, -1, 1, 1)
        index = (
            self._offsets[image].view(b, 1, 1, 1)
            + c * plane
            + (y.view(b, 1, 1, 1) + rows.unsqueeze(1)) * w
            + x.view(b, 1, 1, 1)
            + cols.unsqueeze(1)
        )
        return self.data[index]
