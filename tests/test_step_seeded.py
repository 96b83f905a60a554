"""StepSeededSampler: the batch of step t depends on (seed, rank, t) and on nothing else."""

from __future__ import annotations

import torch

from edsr_lab.data import MultiScaleSampler, PatchSampler, StepSeededSampler


def _images(scale: int, n: int = 3) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(scale)
    hrs = [torch.randint(0, 256, (3, 24 * scale, 20 * scale), generator=g, dtype=torch.uint8)]
    hrs = hrs * n
    lrs = [torch.randint(0, 256, (3, 24, 20), generator=g, dtype=torch.uint8) for _ in hrs]
    return hrs, lrs


def _sampler(seed: int = 0, rank: int = 0, scales=(2,)) -> StepSeededSampler:
    images = {s: _images(s) for s in scales}
    return StepSeededSampler.from_images(images, patch_size=8, batch_size=4, seed=seed, rank=rank)


def test_seed_and_rank_each_change_the_patches():
    first = _sampler().sample()[0]
    assert not torch.equal(first, _sampler(seed=1).sample()[0])  # another --seed
    assert not torch.equal(first, _sampler(rank=1).sample()[0])  # another DDP rank
    assert torch.equal(first, _sampler().sample()[0])  # the same (seed, rank, step)


def test_every_step_draws_new_patches_and_a_resumed_sampler_continues_exactly():
    a = _sampler(seed=3)
    batches = [a.sample()[0] for _ in range(6)]
    assert all(not torch.equal(batches[i], batches[i + 1]) for i in range(5))
    b = _sampler(seed=3)
    b.load_state_dict({"count": 4, "seed": 3})
    assert torch.equal(b.sample()[0], batches[4]) and torch.equal(b.sample()[0], batches[5])


def test_all_ranks_train_the_same_scale_at_each_step_and_the_scales_vary():
    ranks = [_sampler(seed=5, rank=r, scales=(2, 3, 4)) for r in range(3)]
    assert isinstance(ranks[0].sampler, MultiScaleSampler)
    picks = [[s.sample()[2] for _ in range(30)] for s in ranks]
    assert picks[0] == picks[1] == picks[2] and set(picks[0]) == {2, 3, 4}
    assert _sampler(seed=6, scales=(2, 3, 4)).sample()[2] in (2, 3, 4)
    assert isinstance(_sampler().sampler, PatchSampler)
