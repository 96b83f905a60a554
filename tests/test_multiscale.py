"""MultiScaleSampler: MDSR's batches, each at one uniformly drawn scale."""

from __future__ import annotations

import io
import math
from collections import Counter

import pytest
import torch

from edsr_lab.data import MultiScaleSampler, make_div2k_layout
from edsr_lab.data.patches import PatchSampler
from edsr_lab.data.samplers import child_seeds
from edsr_lab.errors import EdsrLabError, SamplerError
from edsr_lab.io import save_image

SCALES = (2, 3, 4)


def _upsample(x: torch.Tensor, s: int) -> torch.Tensor:
    return x.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)


def _sampler(scale: int, seed: int, *, patch_size: int = 4, batch_size: int = 2, **kw):
    """Random LR images with HR = nearest-upsampled LR: any aligned crop pair then has
    hr == upsample(lr, scale), and a pair cut at the wrong scale cannot."""
    g = torch.Generator().manual_seed(100 + scale)
    lrs = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in [(9, 11)]]
    hrs = [_upsample(x, scale) for x in lrs]
    return PatchSampler(
        hrs, lrs, scale, patch_size=patch_size, batch_size=batch_size, seed=seed, **kw
    )


def _multi(seed: int = 0, scales=SCALES, **kw) -> MultiScaleSampler:
    return MultiScaleSampler([_sampler(s, 10 + s, **kw) for s in scales], seed=seed)


def test_shapes_and_alignment_agree_with_the_drawn_scale():
    sampler = _multi(patch_size=5, batch_size=3)
    assert sampler.scales == SCALES and sampler.batch_size == 3 and sampler.patch_size == 5
    seen = set()
    for _ in range(30):
        lr, hr, scale = sampler.sample()
        assert type(scale) is int and scale in SCALES
        assert lr.shape == (3, 3, 5, 5) and hr.shape == (3, 3, 5 * scale, 5 * scale)
        assert lr.dtype == hr.dtype == torch.float32
        assert torch.equal(hr, _upsample(lr, scale))  # HR and LR cut at the same place
        seen.add(scale)
    assert seen == set(SCALES)
    lr, hr, scale = next(iter(sampler))
    assert hr.shape[-1] == 5 * scale


def test_each_scale_is_drawn_uniformly_and_independently():
    """Counts of each scale, and of each (previous, next) pair, within 5 binomial sd.

    The pair counts reject a sampler that cycles 2, 3, 4, 2, ... (right marginal counts,
    but the pair (2, 3) would have probability 1/3 instead of 1/9).
    """
    sampler = _multi(seed=1)
    n = 3000
    draws = [sampler.next_scale() for _ in range(n)]
    counts = Counter(draws)
    p = 1 / 3
    sd = math.sqrt(n * p * (1 - p))  # ~25.8
    for s in SCALES:
        assert abs(counts[s] - n * p) < 5 * sd, (s, counts)
    pairs = Counter(zip(draws, draws[1:], strict=False))
    m, q = n - 1, 1 / 9
    sd_pair = math.sqrt(m * q * (1 - q))
    for a in SCALES:
        for b in SCALES:
            assert abs(pairs[(a, b)] - m * q) < 5 * sd_pair, ((a, b), pairs)


def test_sample_draws_scales_with_the_same_frequencies():
    """sample() itself (not only next_scale) picks each scale about a third of the time."""
    sampler = _multi(seed=2, patch_size=2, batch_size=1)
    n = 900
    counts = Counter(sampler.sample()[2] for _ in range(n))
    sd = math.sqrt(n * (1 / 3) * (2 / 3))
    assert all(abs(counts[s] - n / 3) < 5 * sd for s in SCALES), counts


def test_each_scale_keeps_its_own_patch_stream():
    """The x3 batches are those of a lone x3 PatchSampler with the same seed, in order:
    drawing other scales in between does not disturb them."""
    sampler = _multi(seed=3)
    alone = _sampler(3, 13)
    for _ in range(40):
        lr, hr, scale = sampler.sample()
        if scale == 3:
            lr_a, hr_a = alone.sample()
            assert torch.equal(lr, lr_a) and torch.equal(hr, hr_a)
    assert sampler.sampler(3) is sampler.samplers[1]


def test_state_round_trip_gives_identical_batches():
    sampler = _multi(seed=4)
    for _ in range(7):
        sampler.sample()
    state = sampler.state_dict()
    # Through a weights_only checkpoint, as train() saves it.
    buf = io.BytesIO()
    torch.save({"sampler": state}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["sampler"]
    expected = [sampler.sample() for _ in range(12)]

    other = _multi(seed=99)  # a fresh sampler, as after a restart
    other.load_state_dict(state)
    again = [other.sample() for _ in range(12)]
    assert [s for *_, s in again] == [s for *_, s in expected]
    for (lr_a, hr_a, _), (lr_b, hr_b, _) in zip(expected, again, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    assert len({s for *_, s in expected}) > 1  # the stretch covers several scales
    # the same sampler, rewound to a saved state, repeats its next batch
    state = sampler.state_dict()
    nxt = sampler.sample()
    sampler.load_state_dict(state)
    lr, hr, scale = sampler.sample()
    assert scale == nxt[2] and torch.equal(hr, nxt[1])
    assert not hasattr(sampler, "get_state")  # one state protocol: state_dict/load_state_dict


def test_different_seeds_give_different_scale_sequences():
    seq = [_multi(seed=5), _multi(seed=5), _multi(seed=6)]
    runs = [[m.next_scale() for _ in range(40)] for m in seq]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    seeds = child_seeds(0, 4)
    assert len(set(seeds)) == 4 and seeds == child_seeds(0, 4) and seeds != child_seeds(1, 4)


def test_state_for_other_scales_is_refused():
    state = _multi(scales=(2, 3)).state_dict()
    with pytest.raises(SamplerError, match=r"scales \[2, 3\].*serves \[2, 3, 4\]"):
        _multi().load_state_dict(state)
    with pytest.raises(SamplerError, match="single-scale"):
        _multi().load_state_dict(_sampler(2, 0).state_dict())


def test_samplers_that_do_not_fit_together():
    with pytest.raises(SamplerError, match="at least one"):
        MultiScaleSampler([])
    with pytest.raises(SamplerError, match=r"scales are \[2, 2\]"):
        MultiScaleSampler([_sampler(2, 0), _sampler(2, 1)])
    with pytest.raises(SamplerError, match=r"batch_size \(x2: 2, x3: 5\)"):
        MultiScaleSampler([_sampler(2, 0), _sampler(3, 0, batch_size=5)])
    with pytest.raises(SamplerError, match="not a PatchSampler"):
        MultiScaleSampler([_sampler(2, 0), "x3"])
    with pytest.raises(SamplerError, match="not x8"):
        _multi().sampler(8)
    assert issubclass(SamplerError, EdsrLabError) and issubclass(SamplerError, ValueError)


def test_from_folder_builds_one_sampler_per_scale(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(torch.rand(3, 50, 62, generator=g), src / f"{i}.png")  # cropped to 48x60
    root = make_div2k_layout(src, tmp_path / "DIV2K", scales=SCALES)
    sampler = MultiScaleSampler.from_folder(root, SCALES, patch_size=6, batch_size=4, seed=0)
    assert sampler.scales == SCALES
    assert [s.num_images for s in sampler.samplers] == [2, 2, 2]
    assert [s.scale for s in sampler.samplers] == list(SCALES)
    # Seeds derived from seed=0: the same batches when rebuilt, different per scale.
    again = MultiScaleSampler.from_folder(root, SCALES, patch_size=6, batch_size=4, seed=0)
    for _ in range(6):
        (lr_a, hr_a, s_a), (lr_b, hr_b, s_b) = sampler.sample(), again.sample()
        assert s_a == s_b and torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
        assert hr_a.shape == (4, 3, 6 * s_a, 6 * s_a)
    assert "x3: 2 images" in repr(sampler)
    with pytest.raises(SamplerError, match="seed= once"):
        MultiScaleSampler.from_folder(root, SCALES, scale=2)


# ------------------------------------------------------------------ with train()


def test_train_resumes_an_mdsr_run_exactly(tmp_path):
    """An MDSR run stopped and resumed (fresh model and sampler, everything from the
    checkpoint) ends with the weights of the uninterrupted run: the scale picks and every
    scale's patch stream continue where they stopped."""
    from edsr_lab.models import MDSR, load_checkpoint
    from edsr_lab.train import TrainConfig, train

    def model(seed):
        torch.manual_seed(seed)
        return MDSR(1, 4, SCALES)

    cfg = TrainConfig(iters=6, lr=1e-3, log_every=1, seed=0)
    full = model(0)
    h_full = train(full, _multi(seed=7), cfg, device="cpu", progress=False)
    path = tmp_path / "mdsr_run.pt"
    train(
        model(0),
        _multi(seed=7),
        cfg,
        iters=3,
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    resumed = model(123)
    h = train(
        resumed,
        _multi(seed=999),
        cfg,
        checkpoint_path=str(path),
        resume_from=path,
        progress=False,
        device="cpu",
    )
    assert h.loss == pytest.approx(h_full.loss, rel=1e-6, abs=1e-9)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    back = load_checkpoint(path)  # a training checkpoint is a model checkpoint too
    assert isinstance(back, MDSR) and back.scales == SCALES
