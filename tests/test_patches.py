"""PatchSampler and the dihedral transforms."""

from __future__ import annotations

import pytest
import torch

from edsr_lab.data import make_div2k_layout
from edsr_lab.data.patches import PatchSampler, dihedral, inverse_dihedral
from edsr_lab.io import save_image


def _upsample(x: torch.Tensor, s: int) -> torch.Tensor:
    return x.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)


def _images(sizes, s, channels=3, seed=0):
    """Random uint8 LR images and HR = nearest-upsampled LR: any aligned crop pair then
    satisfies hr == upsample(lr), and any misaligned one almost surely does not."""
    g = torch.Generator().manual_seed(seed)
    lrs = [
        torch.randint(0, 256, (channels, h, w), generator=g, dtype=torch.uint8) for h, w in sizes
    ]
    return [_upsample(x, s) for x in lrs], lrs


# ---------------------------------------------------------------------------- dihedral


def test_dihedral_inverse_round_trip_all_k():
    x = torch.arange(2 * 3 * 4 * 5).view(2, 3, 4, 5)  # non-square: odd k swap H and W
    outs = []
    for k in range(8):
        y = dihedral(x, k)
        assert y.shape == ((2, 3, 5, 4) if k % 2 else (2, 3, 4, 5))
        assert torch.equal(inverse_dihedral(y, k), x)
        outs.append(y)
    square = torch.arange(9).view(3, 3)
    assert len({tuple(dihedral(square, k).flatten().tolist()) for k in range(8)}) == 8
    assert torch.equal(dihedral(x, 0), x)
    assert torch.equal(dihedral(x, 4), x.flip(-1))
    assert torch.equal(dihedral(x, 2), x.flip(-1).flip(-2))


@pytest.mark.parametrize("k", [-1, 8, 1.0, True])
def test_dihedral_bad_k(k):
    with pytest.raises(ValueError, match="0..7"):
        dihedral(torch.zeros(2, 2), k)


# ----------------------------------------------------------------------- PatchSampler


def test_sample_shapes_dtype_range_and_alignment():
    s, p = 3, 8
    hrs, lrs = _images([(20, 31), (9, 12), (40, 8)], s)
    sampler = PatchSampler(hrs, lrs, s, patch_size=p, batch_size=16, seed=1)
    for _ in range(5):
        lr, hr = sampler.sample()
        assert lr.shape == (16, 3, p, p) and hr.shape == (16, 3, p * s, p * s)
        assert lr.dtype == hr.dtype == torch.float32
        assert 0.0 <= float(lr.min()) and float(hr.max()) <= 1.0 and float(lr.max()) > 0.5
        # Aligned crops and the same transform on both: HR is exactly LR upsampled.
        assert torch.equal(hr, _upsample(lr, s))


def test_extract_matches_hand_cropping():
    s, p = 2, 5
    hrs, lrs = _images([(11, 13), (7, 9)], s, seed=3)
    hrs[0] = torch.randint(0, 256, hrs[0].shape, dtype=torch.uint8)  # HR independent of LR
    sampler = PatchSampler(hrs, lrs, s, patch_size=p, batch_size=64)
    d = sampler.draw()
    lr, hr = sampler.extract(d["image"], d["y"], d["x"], d["k"])
    for b in range(64):
        i, y, x, k = (int(d[key][b]) for key in ("image", "y", "x", "k"))
        want_lr = dihedral(lrs[i][:, y : y + p, x : x + p], k).float() / 255
        want_hr = dihedral(hrs[i][:, s * y : s * (y + p), s * x : s * (x + p)], k).float() / 255
        assert torch.equal(lr[b], want_lr) and torch.equal(hr[b], want_hr)


def test_random_choices_cover_everything():
    hrs, lrs = _images([(10, 12), (10, 10)], 2)
    sampler = PatchSampler(hrs, lrs, 2, patch_size=8)
    d = sampler.draw(2000)
    assert set(d["k"].tolist()) == set(range(8))  # all 8 transforms occur
    assert set(d["image"].tolist()) == {0, 1}
    first = d["image"] == 0
    assert set(d["y"][first].tolist()) == {0, 1, 2} and set(d["x"][first].tolist()) == set(
        range(5)
    )  # every crop corner, including the last one
    assert int(d["y"][~first].max()) == 2 and int(d["x"][~first].max()) == 2
    plain = PatchSampler(hrs, lrs, 2, patch_size=8, augment=False)
    assert set(plain.draw(200)["k"].tolist()) == {0}


def test_same_seed_same_batches():
    hrs, lrs = _images([(30, 30), (25, 40)], 2)
    a = PatchSampler(hrs, lrs, 2, patch_size=6, seed=7)
    b = PatchSampler(hrs, lrs, 2, patch_size=6, seed=7)
    c = PatchSampler(hrs, lrs, 2, patch_size=6, seed=8)
    batches_a = [a.sample() for _ in range(3)]
    for la, ha in batches_a:
        lb, hb = b.sample()
        assert torch.equal(la, lb) and torch.equal(ha, hb)
    assert not torch.equal(batches_a[0][0], c.sample()[0])
    state = a.state_dict()
    nxt = a.sample()
    a.load_state_dict(state)
    assert torch.equal(a.sample()[1], nxt[1])
    lr, hr = next(iter(a))
    assert lr.shape == (16, 3, 6, 6)


def test_too_small_image_is_named():
    hrs, lrs = _images([(60, 60), (47, 80)], 4)
    with pytest.raises(ValueError, match=r"image 1: LR is 47x80.*patch_size 48.*HR 192x192"):
        PatchSampler(hrs, lrs, 4, patch_size=48)


def test_bad_inputs():
    hrs, lrs = _images([(10, 10)], 2)
    with pytest.raises(ValueError, match="exactly 20x20"):
        PatchSampler([hrs[0][:, :19]], lrs, 2, patch_size=4)
    with pytest.raises(ValueError, match="1 HR images but 2 LR"):
        PatchSampler(hrs, lrs * 2, 2, patch_size=4)
    with pytest.raises(ValueError, match="at least one"):
        PatchSampler([], [], 2)
    g_hr, g_lr = _images([(10, 10)], 2, channels=1)
    with pytest.raises(ValueError, match="channels"):
        PatchSampler(hrs + g_hr, lrs + g_lr, 2, patch_size=4)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        PatchSampler([hrs[0][0]], [lrs[0][0]], 2, patch_size=4)
    with pytest.raises(ValueError, match="need \\[0, 1\\]"):
        PatchSampler([hrs[0].float()], [lrs[0].float()], 2, patch_size=4)
    with pytest.raises(TypeError, match="uint8"):
        PatchSampler([hrs[0].int()], [lrs[0].int()], 2, patch_size=4)
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(hrs, lrs, 2, patch_size=0)


def test_float_images_and_grayscale():
    hrs, lrs = _images([(12, 12)], 2, channels=1)
    sampler = PatchSampler(
        [h.float() / 255 for h in hrs], [x.float() / 255 for x in lrs], 2, patch_size=12
    )
    lr, hr = sampler.sample()
    assert lr.shape == (16, 1, 12, 12)
    assert torch.equal(hr, _upsample(lr, 2))
    assert "1 images" in repr(sampler)


def test_from_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(torch.rand(3, 43, 53, generator=g), src / f"{i}.png")  # cropped to 40x52
    root = make_div2k_layout(src, tmp_path / "DIV2K", scales=(2, 4))
    sampler = PatchSampler.from_folder(root, 4, patch_size=8, batch_size=4, seed=0)
    assert sampler.num_images == 2 and sampler.memory_bytes() == 2 * 3 * (40 * 52 + 10 * 13)
    lr, hr = sampler.sample()
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 32, 32)


def _stream(sampler, n=4):
    return [sampler.sample() for _ in range(n)]


def _same_streams(a, b):
    return all(
        torch.equal(la.cpu(), lb.cpu()) and torch.equal(ha.cpu(), hb.cpu())
        for (la, ha), (lb, hb) in zip(a, b, strict=True)
    )


def test_cpu_storage_path_gives_the_same_batches_as_device_storage():
    """The host path (images in CPU memory, batch cut there and copied to the device)
    draws the same choices from the same generator, so batches are identical."""
    hrs, lrs = _images([(30, 41), (25, 40), (19, 19)], 3)
    kw = dict(patch_size=6, batch_size=5, seed=11)
    dev = PatchSampler(hrs, lrs, 3, storage="device", **kw)
    host = PatchSampler(hrs, lrs, 3, storage="cpu", **kw)
    assert dev.storage == "device" and host.storage == "cpu"
    assert _same_streams(_stream(dev), _stream(host))
    # resuming the host path from a saved state continues the same stream
    state = host.state_dict()
    nxt = _stream(host, 2)
    host.load_state_dict(state)
    assert _same_streams(_stream(host, 2), nxt)
    assert "storage=cpu" in repr(host)


def test_auto_storage_on_cpu_and_pinned_without_cuda():
    hrs, lrs = _images([(20, 20)], 2)
    auto = PatchSampler(hrs, lrs, 2, patch_size=4, storage="auto")
    assert auto.storage == "device" and "CPU memory" in auto.storage_reason
    if not torch.cuda.is_available():
        pinned = PatchSampler(hrs, lrs, 2, patch_size=4, storage="pinned")
        assert pinned.storage == "cpu" and "needs CUDA" in pinned.storage_reason
    with pytest.raises(ValueError, match="storage='disk'.*device, pinned, cpu"):
        PatchSampler(hrs, lrs, 2, patch_size=4, storage="disk")


def test_choose_storage_from_free_memory(monkeypatch):
    from edsr_lab.data import patches

    assert patches.choose_storage(10, "cpu")[0] == "device"
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20 * gib, 80 * gib))
    monkeypatch.setattr(patches, "_host_available_bytes", lambda: 100 * gib)
    # 80 GB card with 20 GB free keeps 20 GB (25 %) for training: nothing fits
    storage, why = patches.choose_storage(6 * gib, "cuda")
    assert storage == "pinned" and "do not fit on the GPU" in why
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * gib, 80 * gib))
    storage, why = patches.choose_storage(6 * gib, "cuda")
    assert storage == "device" and "kept on the GPU" in why
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 8 * gib))
    monkeypatch.setattr(patches, "_host_available_bytes", lambda: 8 * gib)
    assert patches.choose_storage(6 * gib, "cuda")[0] == "cpu"  # pinning 6 of 8 GB: no


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_storage_matches_gpu_storage():
    hrs, lrs = _images([(64, 80), (50, 50), (70, 49)], 2)
    kw = dict(patch_size=48, batch_size=16, seed=5, device="cuda")
    gpu = PatchSampler(hrs, lrs, 2, storage="device", **kw)
    pinned = PatchSampler(hrs, lrs, 2, storage="pinned", **kw)
    assert pinned.storage == "pinned" and pinned._hr.data.is_pinned()
    a, b = _stream(gpu, 20), _stream(pinned, 20)
    assert all(t.is_cuda for pair in b for t in pair)
    assert _same_streams(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    hrs, lrs = _images([(64, 80), (50, 50)], 2)
    cpu = PatchSampler(hrs, lrs, 2, patch_size=48, seed=3)
    gpu = PatchSampler(hrs, lrs, 2, patch_size=48, seed=3, device="cuda")
    lr_c, hr_c = cpu.sample()
    lr_g, hr_g = gpu.sample()
    assert lr_g.is_cuda and hr_g.is_cuda
    assert torch.equal(lr_g.cpu(), lr_c) and torch.equal(hr_g.cpu(), hr_c)


def test_center_crop_pair_is_aligned_and_checks_sizes():
    from edsr_lab.data import center_crop_pair

    lr = torch.arange(2 * 7 * 9, dtype=torch.float32).reshape(2, 7, 9)
    hr = lr.repeat_interleave(3, dim=-2).repeat_interleave(3, dim=-1)
    hr_c, lr_c = center_crop_pair(hr, lr, 3, 3)
    assert lr_c.shape == (2, 3, 3) and hr_c.shape == (2, 9, 9)
    assert torch.equal(lr_c, lr[:, 2:5, 3:6])
    assert torch.equal(hr_c, lr_c.repeat_interleave(3, dim=-2).repeat_interleave(3, dim=-1))
    assert center_crop_pair(hr, lr, None, 3) == (hr, lr)
    with pytest.raises(ValueError, match="modcrop"):
        center_crop_pair(hr[:, :-1], lr, 3, 3)
    with pytest.raises(ValueError, match="crop size 8"):
        center_crop_pair(hr, lr, 8, 3)


def test_uint16_images_are_kept_at_16_bits():
    """Medical values: 16-bit levels survive the sampler (uint8 storage would round them)."""
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 65536, (1, 32, 32), generator=g, dtype=torch.int32).to(torch.uint16)
    lr = hr[:, ::2, ::2].contiguous()
    sampler = PatchSampler([hr], [lr], 2, patch_size=8, batch_size=4, seed=0, augment=False)
    assert sampler.wide and "16-bit" in repr(sampler)
    assert sampler.memory_bytes() == 2 * (hr.numel() + lr.numel())
    image, y, x, k = (torch.zeros(1, dtype=torch.long),) * 4
    lr_patch, hr_patch = sampler.extract(image, y, x, k)
    assert torch.equal(hr_patch[0], hr[:, :16, :16].to(torch.float32) / 65535)
    assert torch.equal(lr_patch[0], lr[:, :8, :8].to(torch.float32) / 65535)
    assert len(torch.unique(hr_patch)) > 200  # 256 random draws of 65536 levels: no rounding
    # an 8-bit partner image is promoted (x 257), not the 16-bit one rounded down
    mixed = PatchSampler([hr, hr.to(torch.int32).div(257, rounding_mode="floor").to(torch.uint8)],
                         [lr, lr.to(torch.int32).div(257, rounding_mode="floor").to(torch.uint8)],
                         2, patch_size=8, batch_size=4, seed=0)  # fmt: skip
    assert mixed.wide
