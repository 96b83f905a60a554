"""Samplers of whole batches, on top of :class:`~edsr_lab.data.patches.PatchSampler` (one
scale's random patches):

- :class:`MultiScaleSampler`: MDSR's batches, each at one random scale;
- :class:`StepSeededSampler`: any of the two, drawn so that the batch of step t depends
  only on (seed, rank, t): a run resumed at any step -- on any number of processes --
  sees exactly the batches an uninterrupted run would have seen.

All of them share one state protocol: ``state_dict()`` returns only tensors, ints and
lists (it saves inside a ``weights_only`` checkpoint) and ``load_state_dict(state)``
restores it; :func:`edsr_lab.train.train` saves and restores it with its checkpoints.

MDSR (Lim et al. 2017, sections 3.3 and 4.2) is trained on x2, x3 and x4 at once: each
minibatch is drawn at *one* scale picked uniformly at random among the model's scales, so
that step runs (and updates) only that scale's pre-processing module and upsampler, plus
the shared head, body and tail. :class:`MultiScaleSampler` does exactly that on top of
one PatchSampler per scale::

    sampler = MultiScaleSampler.from_folder("data/DIV2K", (2, 3, 4), seed=0)
    lr, hr, scale = sampler.sample()   # (16, 3, 48, 48), (16, 3, 48*scale, 48*scale), 2|3|4
    sr = model(lr, scale)

Its randomness comes from generators it owns (never torch's global RNG): one picks the
scales, and each PatchSampler keeps its own patch stream, which advances only when its
scale is drawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from edsr_lab.data.div2k import find_pairs
from edsr_lab.data.patches import PatchSampler
from edsr_lab.errors import DatasetError, SamplerError

__all__ = [
    "MultiScaleSampler",
    "StepSeededSampler",
    "child_seeds",
]


def child_seeds(seed: int, n: int) -> list[int]:
    """``n`` seeds derived from ``seed``: the scale picker's, then one per scale.

    Drawn from a generator seeded with ``seed`` rather than ``seed + i``, so that the
    samplers of run ``seed=0`` do not replay those of run ``seed=1`` shifted by one scale.
    """
    g = torch.Generator().manual_seed(int(seed))
    return [int(v) for v in torch.randint(0, 2**62, (n,), generator=g)]


class MultiScaleSampler:
    """Batches at a random scale each: ``sample() -> (lr, hr, scale)``.

    Args:
        samplers: one :class:`PatchSampler` per scale (scales distinct), all with the same
            ``batch_size``, ``patch_size``, channel count and device. The order sets the
            order of :attr:`scales` (use the model's, e.g. 2, 3, 4).
        seed: seed of the generator that picks the scale of each batch (on the CPU, so
            the same seed gives the same scale sequence on any device). The PatchSamplers
            keep their own seeds.

    ``sample()`` draws ``scale`` uniformly from :attr:`scales` (probability 1/len each,
    independently per batch), then returns that scale's ``PatchSampler.sample()``:
    ``lr`` float32 (B, C, p, p) and ``hr`` float32 (B, C, p*scale, p*scale), both in
    [0, 1] on ``device``, and ``scale`` as a Python int.

    Memory: each scale holds its own copy of the images (HR images differ per scale once
    cropped to a multiple of it); DIV2K's 800 train images at x2, x3 and x4 take about
    3 x 6.5 GB as uint8. Build the PatchSamplers with ``storage="pinned"`` (or ``"auto"``,
    which decides per scale from the free GPU memory) if the GPU cannot hold them all.
    """

    def __init__(self, samplers: Sequence[PatchSampler], *, seed: int = 0):
        samplers = list(samplers)
        if not samplers:
            raise SamplerError("MultiScaleSampler needs at least one PatchSampler (one per scale)")
        for i, s in enumerate(samplers):
            if not isinstance(s, PatchSampler):
                raise SamplerError(
                    f"samplers[{i}] is a {type(s).__name__}, not a PatchSampler; build one per "
                    "scale, or use MultiScaleSampler.from_folder(root, scales)"
                )
        scales = [s.scale for s in samplers]
        if len(set(scales)) != len(scales):
            raise SamplerError(f"one PatchSampler per scale, but the scales are {scales}")
        first = samplers[0]
        for name in ("batch_size", "patch_size", "channels", "device"):
            values = [getattr(s, name) for s in samplers]
            if any(v != values[0] for v in values):
                detail = ", ".join(f"x{sc}: {v}" for sc, v in zip(scales, values, strict=True))
                raise SamplerError(
                    f"the per-scale samplers disagree on {name} ({detail}); build them with "
                    f"the same {name}, since one training step may come from any of them"
                )
        self.samplers = samplers
        self.scales: tuple[int, ...] = tuple(scales)
        self.batch_size, self.patch_size = first.batch_size, first.patch_size
        self.channels, self.device = first.channels, first.device
        self.generator = torch.Generator().manual_seed(int(seed))

    # -- construction helpers

    @classmethod
    def from_pairs(
        cls,
        pairs: Mapping[int, Sequence[tuple[str | Path, str | Path]]],
        *,
        channels: int = 3,
        seed: int = 0,
        **kwargs: Any,
    ) -> MultiScaleSampler:
        """Build from ``{scale: [(hr_path, lr_path), ...]}`` (e.g. ``find_pairs`` per scale).

        ``kwargs`` (``patch_size``, ``batch_size``, ``augment``, ``device``) go to every
        PatchSampler. The picker and the per-scale samplers get seeds derived from
        ``seed`` (:func:`child_seeds`).
        """
        if "seed" in kwargs or "scale" in kwargs:
            raise SamplerError("give seed= once; the per-scale seeds are derived from it")
        items = list(pairs.items())
        if not items:
            raise SamplerError("no scales given; pass {scale: pairs} for each scale, e.g. 2, 3, 4")
        seeds = child_seeds(seed, len(items) + 1)
        samplers = [
            PatchSampler.from_pairs(p, scale, channels=channels, seed=seeds[i + 1], **kwargs)
            for i, (scale, p) in enumerate(items)
        ]
        return cls(samplers, seed=seeds[0])

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        scales: Iterable[int] = (2, 3, 4),
        *,
        split: str = "train",
        indices: Iterable[int] | None = None,
        **kwargs: Any,
    ) -> MultiScaleSampler:
        """Build from a DIV2K-layout folder holding LR images for every scale in ``scales``."""
        index_list = None if indices is None else list(indices)
        pairs = {s: find_pairs(root, split, s, indices=index_list) for s in scales}
        return cls.from_pairs(pairs, **kwargs)

    # -- sampling

    def next_scale(self) -> int:
        """Draw the scale of the next batch (advances the picker, not the patch streams)."""
        i = int(torch.randint(len(self.scales), (1,), generator=self.generator))
        return self.scales[i]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One batch at a random scale: ``(lr, hr, scale)`` (see the class docstring)."""
        scale = self.next_scale()
        lr, hr = self.samplers[self.scales.index(scale)].sample()
        return lr, hr, scale

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        while True:
            yield self.sample()

    def sampler(self, scale: int) -> PatchSampler:
        """The PatchSampler of one scale (e.g. to draw validation-size batches at x3)."""
        if scale not in self.scales:
            raise SamplerError(f"this sampler serves scales {self.scales}, not x{scale}")
        return self.samplers[self.scales.index(scale)]

    # -- reproducibility (resume a training run with the same batch stream)

    def state_dict(self) -> dict[str, Any]:
        """All random state: ``{"scales": [...], "picker": tensor, "samplers": [state, ...]}``
        (each scale's ``PatchSampler.state_dict()``).

        Only tensors, ints and lists, so it saves inside a ``weights_only`` checkpoint.
        """
        return {
            "scales": list(self.scales),
            "picker": self.generator.get_state(),
            "samplers": [s.state_dict() for s in self.samplers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the scales must be the same, in the same order."""
        if not isinstance(state, Mapping) or not {"scales", "picker", "samplers"} <= set(state):
            raise SamplerError(
                "not a MultiScaleSampler state (expected keys scales, picker, samplers); was "
                "the checkpoint written with a single-scale sampler?"
            )
        if list(state["scales"]) != list(self.scales):
            raise SamplerError(
                f"the saved sampler state is for scales {list(state['scales'])}, this sampler "
                f"serves {list(self.scales)}; resume with the same --scale list, in the same order"
            )
        self.generator.set_state(state["picker"])
        for s, st in zip(self.samplers, state["samplers"], strict=True):
            s.load_state_dict(st)

    def memory_bytes(self) -> int:
        """Bytes of image data held on ``device``, all scales together."""
        return sum(s.memory_bytes() for s in self.samplers)

    def __repr__(self) -> str:
        per = ", ".join(f"x{s.scale}: {s.num_images} images" for s in self.samplers)
        return (
            f"MultiScaleSampler({per}; patch {self.patch_size}, batch {self.batch_size}, "
            f"device={self.device}, {self.memory_bytes() / 2**20:.1f} MB of images)"
        )


class StepSeededSampler:
    """The batches of a :class:`PatchSampler` or :class:`MultiScaleSampler`, drawn so that
    the batch of step t depends only on (seed, rank, t).

    Before step t, the scale picker (if any) is re-seeded from (seed, t) -- the same on
    every rank, so all DDP ranks train the same scale in a step, as the paper's MDSR
    minibatches are drawn at one scale -- and every patch stream from (seed, rank, t), so
    each rank has its own patches. The state is just the step count: a run resumed from
    any checkpoint, on any number of ranks, continues each stream where it stopped.

    Args:
        sampler: one scale's :class:`PatchSampler` (``sample() -> (lr, hr)``) or a
            :class:`MultiScaleSampler` (``sample() -> (lr, hr, scale)``); its own seeds do
            not matter, they are replaced at every step.
        seed: the run's seed.
        rank: this process's rank (0 without DDP).
    """

    def __init__(self, sampler: PatchSampler | MultiScaleSampler, *, seed: int = 0, rank: int = 0):
        if not isinstance(sampler, (PatchSampler, MultiScaleSampler)):
            raise SamplerError(
                f"StepSeededSampler wraps a PatchSampler or a MultiScaleSampler, not a "
                f"{type(sampler).__name__}"
            )
        self.sampler = sampler
        self.seed, self.rank = int(seed), int(rank)
        self.count = 0  # batches drawn: the next one is step count + 1's

    @classmethod
    def from_images(
        cls,
        images: Mapping[int, tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]],
        *,
        seed: int = 0,
        rank: int = 0,
        **kwargs: Any,
    ) -> StepSeededSampler:
        """Build from ``{scale: (hr_images, lr_images)}``: one PatchSampler per scale
        (``kwargs``: ``patch_size``, ``batch_size``, ``device``, ``storage``), under a
        MultiScaleSampler (scales in increasing order) when there are several."""
        samplers = []
        for s in sorted(images):
            hrs, lrs = images[s]
            try:
                samplers.append(PatchSampler(hrs, lrs, s, seed=seed, **kwargs))
            except ValueError as e:
                raise DatasetError(f"cannot cut training patches at x{s}: {e}") from e
        inner = samplers[0] if len(samplers) == 1 else MultiScaleSampler(samplers, seed=seed)
        return cls(inner, seed=seed, rank=rank)

    @property
    def scales(self) -> tuple[int, ...]:
        return (
            (self.sampler.scale,) if isinstance(self.sampler, PatchSampler) else self.sampler.scales
        )

    @property
    def patch_samplers(self) -> list[PatchSampler]:
        """The PatchSampler of each scale."""
        inner = self.sampler
        return [inner] if isinstance(inner, PatchSampler) else list(inner.samplers)

    @property
    def storage_reason(self) -> str:
        """Where the training images are kept, and why (the first scale's)."""
        return self.patch_samplers[0].storage_reason

    def _seed_now(self, stream: str) -> int:
        """The generator seed of ``stream`` at the current step.

        torch's CPU generator keeps only the low 32 bits of a seed, so (seed, stream) is
        hashed to 32 bits and the step added: one stream's seeds stay distinct for 2**32
        steps, and mt19937 streams of nearby seeds are unrelated.
        """
        digest = hashlib.blake2b(f"{self.seed}/{stream}".encode(), digest_size=4).digest()
        return (int.from_bytes(digest, "little") + self.count) % 2**32

    def sample(self) -> tuple:
        """The next step's batch: ``(lr, hr)`` for one scale, ``(lr, hr, scale)`` for several."""
        if isinstance(self.sampler, MultiScaleSampler):
            # the same on every rank: all ranks train one scale per step
            self.sampler.generator.manual_seed(self._seed_now("scale"))
        for patches in self.patch_samplers:
            patches.generator.manual_seed(self._seed_now(f"rank {self.rank}"))
        self.count += 1
        return self.sampler.sample()

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.count = int(state["count"])

    def __repr__(self) -> str:
        return f"StepSeededSampler({self.sampler!r}, seed={self.seed}, rank={self.rank})"
