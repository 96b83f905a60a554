"""Tests for edsr_lab.resize: MATLAB-exact bicubic imresize, modcrop, degrade.

How MATLAB compatibility is checked:
(a) a slow, loop-per-output-pixel float64 reference written straight from MATLAB's
    imresize algorithm (below), compared to 1e-12;
(b) a 1-D case worked out by hand;
(c) numbers produced by MATLAB itself, quoted from the %!test blocks of GNU Octave's
    image package, inst/imresize.m (2022 rewrite by Christof Kaufmann, "Test bicubic
    interpolations against some reference results from matlab"): an 8x10 uint8 image
    resized by 1.5, 0.5, 4/3, 1/3, with and without antialiasing (MATLAB rounded to
    uint8, so +-1 is allowed, as Octave's own test allows), and the float64 values
    [10.27777777777777, 8, 5.72222222222222] of imresize([10 6], [3 3]) (tolerance 1e-13).
(d) properties; (e) errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edsr_lab.resize import degrade, imresize, modcrop, resize_weights

# ---------------------------------------------------------------------------------------
# (a) Independent slow reference, one output pixel at a time, 1-based like MATLAB.


def _ref_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _ref_mirror(j: int, n: int) -> int:
    """1-based index j mirrored into 1..n: ... 2 1 | 1 2 ... n | n n-1 ..."""
    m = (j - 1) % (2 * n)
    return m + 1 if m < n else 2 * n - m


def _ref_resize_1d(v: np.ndarray, out_len: int, scale: float, aa: bool) -> np.ndarray:
    n = len(v)
    kw = 4.0 / scale if (scale < 1 and aa) else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kw / 2)
        ws, js = [], []
        for k in range(math.ceil(kw) + 2):
            j = left + k
            d = u - j
            w = scale * _ref_cubic(scale * d) if (scale < 1 and aa) else _ref_cubic(d)
            ws.append(w)
            js.append(_ref_mirror(j, n))
        total = sum(ws)
        out[i - 1] = sum(w / total * v[j - 1] for w, j in zip(ws, js, strict=True))
    return out


def _ref_imresize(img: np.ndarray, scale=None, size=None, aa=True) -> np.ndarray:
    """img: (H, W) float64. Same order rule as MATLAB: smaller scale first."""
    h, w = img.shape
    if size is None:
        out_hw = (math.ceil(h * scale), math.ceil(w * scale))
        scales = (scale, scale)
    else:
        out_hw = tuple(size)
        scales = (size[0] / h, size[1] / w)
    order = [0, 1] if scales[0] <= scales[1] else [1, 0]
    for dim in order:
        if dim == 0:
            img = np.stack(
                [_ref_resize_1d(img[:, c], out_hw[0], scales[0], aa) for c in range(img.shape[1])],
                axis=1,
            )
        else:
            img = np.stack(
                [_ref_resize_1d(img[r, :], out_hw[1], scales[1], aa) for r in range(img.shape[0])],
                axis=0,
            )
    return img


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.3, 2, 3, 1.7])
@pytest.mark.parametrize("shape", [(13, 17), (9, 8)])
def test_matches_loop_reference(scale, shape):
    rng = np.random.default_rng(hash((scale, shape)) % 2**32)
    img = rng.random(shape)
    got = imresize(torch.from_numpy(img), scale).numpy()
    want = _ref_imresize(img, scale=scale)
    assert got.shape == want.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(5, 11), (20, 7), (1, 1), (13, 17)])
def test_matches_loop_reference_with_size(size):
    img = np.random.default_rng(1).random((13, 17))
    got = imresize(torch.from_numpy(img), size=size).numpy()
    np.testing.assert_allclose(got, _ref_imresize(img, size=size), rtol=0, atol=1e-12)


def test_matches_loop_reference_without_antialiasing():
    img = np.random.default_rng(2).random((12, 15))
    got = imresize(torch.from_numpy(img), 0.4, antialiasing=False).numpy()
    np.testing.assert_allclose(got, _ref_imresize(img, scale=0.4, aa=False), atol=1e-12)


def test_blocked_path_matches_reference_on_long_axis():
    # Long enough that the blocked (windowed) matrix multiply is used, not the dense one.
    img = np.random.default_rng(3).random((3, 700))
    for scale in (0.5, 1 / 3, 2.5):
        got = imresize(torch.from_numpy(img), scale).numpy()
        np.testing.assert_allclose(got, _ref_imresize(img, scale=scale), atol=1e-12)


# ---------------------------------------------------------------------------------------
# (b) Worked by hand: v = [1, 2, 3, 4] shrunk by 1/2 (one row, so only columns change).
# Antialiased kernel h(d) = 0.5 * cubic(0.5 d), width 8, so 10 taps.
# Output 1: u = 1/0.5 + 0.5 * (1 - 2) = 1.5; left = floor(1.5 - 4) = -3; taps j = -3..6,
# distances u - j = 4.5, 3.5, 2.5, 1.5, 0.5, -0.5, ..., -4.5.
# cubic(0.25) = 1.5/64 - 2.5/16 + 1 = 0.8671875     -> h = 0.43359375 = 111/256
# cubic(0.75) = 1.5*27/64 - 2.5*9/16 + 1 = 0.2265625 -> h = 0.11328125 =  29/256
# cubic(1.25) = -0.5*1.953125 + 2.5*1.5625 - 5 + 2 = -0.0703125 -> h = -9/256
# cubic(1.75) = -0.5*5.359375 + 2.5*3.0625 - 7 + 2 = -0.0234375 -> h = -3/256
# cubic(2.25) = 0 (taps -3 and 6 vanish). Weights for j = -2..5:
#   [-3, -9, 29, 111, 111, 29, -9, -3] / 256, summing to 256/256 = 1.
# Symmetric border for n = 4 maps j = -2, -1, 0 -> 3, 2, 1 and j = 5 -> 4, so
#   out1 = (140 v1 + 102 v2 + 26 v3 - 12 v4) / 256 = (140 + 204 + 78 - 48) / 256 = 374/256
#   out2 = mirror image = (-12 v1 + 26 v2 + 102 v3 + 140 v4) / 256 = 906 / 256.


def test_hand_worked_downscale_by_two():
    v = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    out = imresize(v, 0.5)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == pytest.approx(374 / 256, abs=1e-15)
    assert out[0, 1].item() == pytest.approx(906 / 256, abs=1e-15)


def test_hand_worked_weights():
    idx, w = resize_weights(4, 2, 0.5)
    np.testing.assert_allclose(w[0], np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256)
    np.testing.assert_array_equal(idx[0], [2, 1, 0, 0, 1, 2, 3, 3])  # 0-based, mirrored


# ---------------------------------------------------------------------------------------
# (c) MATLAB's own output (see module docstring for the source).

_OCTAVE_IN = np.array(
    [
        [116, 227, 153, 69, 146, 194, 59, 130, 139, 106],
        [2, 47, 137, 249, 90, 75, 16, 24, 158, 44],
        [155, 68, 46, 84, 166, 156, 69, 204, 32, 152],
        [71, 221, 137, 230, 210, 153, 192, 115, 30, 118],
        [107, 143, 108, 52, 51, 73, 101, 21, 175, 90],
        [54, 158, 143, 77, 26, 168, 113, 229, 165, 225],
        [9, 47, 133, 135, 130, 207, 236, 43, 19, 73],
        [129, 60, 59, 243, 64, 181, 249, 56, 32, 86],
    ],
    dtype=np.float64,
)

_MATLAB_BICUBIC = {
    # (scale, antialiasing): MATLAB imresize(uint8(in), scale, "bicubic", ...)
    (1.5, True): [
        [116, 187, 237, 171, 94, 61, 135, 191, 187, 75, 91, 142, 140, 124, 108],
        [43, 92, 143, 149, 164, 163, 119, 123, 118, 44, 38, 80, 151, 118, 62],
        [13, 21, 47, 107, 195, 228, 115, 81, 70, 24, 19, 56, 137, 105, 48],
        [146, 98, 49, 49, 71, 107, 148, 159, 132, 58, 124, 176, 61, 85, 146],
        [118, 139, 144, 92, 116, 168, 201, 188, 159, 140, 167, 158, 27, 69, 153],
        [61, 151, 218, 145, 174, 219, 201, 164, 146, 187, 148, 84, 48, 76, 115],
        [102, 132, 151, 119, 90, 72, 72, 72, 83, 114, 60, 31, 144, 130, 80],
        [81, 121, 154, 133, 87, 41, 19, 67, 116, 95, 108, 140, 183, 180, 163],
        [37, 95, 152, 150, 117, 73, 35, 108, 179, 130, 174, 214, 153, 176, 219],
        [3, 29, 73, 131, 136, 120, 116, 162, 214, 229, 147, 54, 35, 62, 96],
        [67, 54, 51, 83, 153, 187, 111, 141, 210, 255, 149, 22, 13, 42, 74],
        [142, 99, 53, 43, 164, 237, 77, 103, 197, 254, 159, 42, 31, 59, 91],
    ],
    (0.5, False): [
        [92, 164, 123, 38, 118],
        [139, 116, 188, 167, 69],
        [121, 87, 67, 108, 180],
        [54, 153, 141, 149, 42],
    ],
    (0.5, True): [
        [105, 140, 126, 81, 109],
        [110, 134, 153, 114, 93],
        [108, 108, 94, 127, 146],
        [67, 126, 162, 149, 62],
    ],
    (4 / 3, True): [
        [116, 203, 221, 141, 62, 110, 180, 191, 70, 104, 143, 136, 111, 106],
        [26, 78, 126, 156, 200, 139, 103, 103, 33, 28, 92, 158, 67, 46],
        [51, 35, 51, 112, 195, 146, 101, 87, 29, 57, 100, 114, 81, 74],
        [159, 110, 63, 50, 82, 148, 179, 152, 83, 173, 147, 27, 143, 170],
        [70, 171, 189, 134, 217, 226, 193, 158, 186, 157, 83, 25, 114, 135],
        [91, 152, 162, 116, 118, 114, 102, 98, 138, 65, 60, 127, 92, 84],
        [90, 130, 144, 111, 52, 24, 50, 101, 94, 86, 129, 190, 146, 135],
        [41, 114, 157, 139, 89, 37, 82, 178, 125, 192, 203, 154, 213, 227],
        [4, 33, 89, 141, 127, 118, 151, 213, 232, 119, 35, 34, 81, 92],
        [88, 61, 54, 97, 203, 129, 115, 203, 255, 119, 18, 24, 70, 81],
        [147, 91, 43, 68, 247, 125, 80, 191, 255, 130, 33, 37, 83, 94],
    ],
    (1 / 3, False): [
        [47, 90, 24, 44],
        [143, 51, 21, 90],
        [60, 64, 56, 86],
    ],
    (1 / 3, True): [
        [115, 135, 97, 101],
        [113, 119, 124, 125],
        [81, 157, 118, 64],
    ],
}


@pytest.mark.parametrize("key", list(_MATLAB_BICUBIC), ids=lambda k: f"s{k[0]:.3f}-aa{k[1]}")
def test_matches_matlab_uint8_outputs_exactly(key):
    # MATLAB keeps the uint8 class between its row and column passes, so it rounds after
    # each pass; uint8=True does the same and then every pixel matches exactly.
    scale, aa = key
    want = torch.tensor(_MATLAB_BICUBIC[key], dtype=torch.float64)
    x = torch.from_numpy(_OCTAVE_IN / 255.0)
    got = imresize(x, scale, antialiasing=aa, uint8=True) * 255.0
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
    # The float path rounded once at the end is within one level (Octave's own tolerance).
    once = torch.floor(imresize(x, scale, antialiasing=aa).clamp(0, 1) * 255 + 0.5)
    assert (once - want).abs().max() <= 1


def test_matches_matlab_float_values():
    x = torch.tensor([[10.0, 6.0]], dtype=torch.float64)
    out = imresize(x, size=(3, 3))
    want = torch.tensor([10.27777777777777, 8.0, 5.72222222222222], dtype=torch.float64)
    assert out.shape == (3, 3)
    for r in range(3):
        torch.testing.assert_close(out[r], want, rtol=0, atol=1e-13)
    torch.testing.assert_close(imresize(x.T, size=(3, 3)), out.T, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------
# (d) Properties.


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.3, 2, 1.7])
def test_constant_stays_constant(scale):
    x = torch.full((2, 3, 11, 14), 0.37, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, scale), torch.full_like(imresize(x, scale), 0.37))


@pytest.mark.parametrize(("hw", "scale"), [((10, 7), 0.5), ((9, 9), 1 / 3), ((5, 6), 2.5)])
def test_output_size_is_ceil(hw, scale):
    out = imresize(torch.rand(3, *hw), scale)
    assert out.shape == (3, math.ceil(hw[0] * scale), math.ceil(hw[1] * scale))


def test_linear_ramp_preserved_in_interior_when_upsampling():
    # Cubic convolution reproduces linear functions; only the mirrored border bends them.
    h, w, s = 12, 16, 2
    ramp = (torch.arange(w, dtype=torch.float64) * 0.05 + 0.1).expand(h, w)
    out = imresize(ramp, s)
    # Output column x (1-based) samples input coordinate u = x/s + 0.5(1 - 1/s).
    u = torch.arange(1, w * s + 1, dtype=torch.float64) / s + 0.5 * (1 - 1 / s)
    expected = 0.1 + 0.05 * (u - 1)
    interior = slice(2 * s, -2 * s)
    torch.testing.assert_close(out[:, interior], expected[interior].expand(h * s, -1))
    assert not torch.allclose(out[:, :2], expected[:2].expand(h * s, -1))


def test_float32_agrees_with_float64():
    x = torch.rand(2, 3, 21, 19, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 2):
        a = imresize(x, scale)
        b = imresize(x.float(), scale)
        assert b.dtype == torch.float32
        assert (a - b.double()).abs().max() < 1e-5


def test_half_precision_is_computed_in_float32():
    x = torch.rand(3, 16, 16)
    out = imresize(x.half(), 0.5)
    assert out.dtype == torch.float16
    assert (out.float() - imresize(x, 0.5)).abs().max() < 2e-3


def test_batch_equals_per_image():
    x = torch.rand(4, 3, 20, 18, dtype=torch.float64)
    batched = imresize(x, 1 / 3)
    for i in range(4):
        torch.testing.assert_close(batched[i], imresize(x[i], 1 / 3), rtol=0, atol=1e-14)
    # (H, W) and extra leading dims
    torch.testing.assert_close(imresize(x[0, 0], 0.5), imresize(x, 0.5)[0, 0])
    assert imresize(x.view(2, 2, 3, 20, 18), 0.5).shape == (2, 2, 3, 10, 9)


def test_down_then_up_is_close_for_smooth_images():
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, 64, dtype=torch.float64),
        torch.linspace(0, 1, 64, dtype=torch.float64),
        indexing="ij",
    )
    img = 0.5 + 0.3 * torch.sin(2 * math.pi * xx) * torch.cos(2 * math.pi * yy)
    back = imresize(imresize(img, 0.5), 2)
    assert back.shape == img.shape
    assert (back - img).abs().max() < 0.02
    noise = torch.rand(64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert (imresize(imresize(noise, 0.5), 2) - noise).abs().max() > 0.2  # not trivial


def test_noncontiguous_input_and_scale_pair():
    x = torch.rand(3, 20, 30, dtype=torch.float64)
    xt = x.transpose(1, 2)  # (3, 30, 20), not contiguous
    torch.testing.assert_close(imresize(xt, 0.5), imresize(xt.contiguous(), 0.5))
    out = imresize(x, (0.5, 2))
    assert out.shape == (3, 10, 60)


def test_gradients_flow():
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    imresize(x, 0.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_differs_from_torch_interpolate():
    # Fact the course teaches: PyTorch's bicubic is not MATLAB's.
    x = torch.rand(1, 3, 48, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = imresize(x, 0.5)
    plain = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False)
    aa = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    # Default torch bicubic: a = -0.75 and no antialiasing -> different everywhere.
    assert (ours - plain)[..., 4:-4, 4:-4].abs().max() > 0.05
    # antialias=True uses the same a = -0.5 stretched kernel: equal in the interior ...
    assert (ours - aa)[..., 4:-4, 4:-4].abs().max() < 1e-12
    # ... but torch truncates the kernel at the border where MATLAB mirrors the image.
    assert (ours - aa).abs().max() > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 40, 36, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 2):
        out = imresize(x.cuda(), scale)
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), imresize(x, scale), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# modcrop / degrade


def test_modcrop_keeps_top_left():
    x = torch.arange(7 * 10, dtype=torch.float32).view(1, 7, 10)
    out = modcrop(x, 3)
    assert out.shape == (1, 6, 9)
    torch.testing.assert_close(out, x[:, :6, :9])
    assert modcrop(x, 1).shape == x.shape


def test_degrade_is_modcrop_then_imresize_then_8bit():
    hr = torch.rand(3, 50, 61, dtype=torch.float64)
    lr = degrade(hr, 4)
    assert lr.shape == (3, 12, 15)  # 48 // 4, 60 // 4: ceil(H'/s) == H'/s after modcrop
    raw = imresize(modcrop(hr, 4), 0.25)
    torch.testing.assert_close(degrade(hr, 4, quantize=False), raw)
    torch.testing.assert_close(lr, imresize(modcrop(hr, 4), 0.25, uint8=True))
    levels = lr * 255
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-9)
    assert (levels - torch.floor(raw.clamp(0, 1) * 255 + 0.5)).abs().max() <= 1
    lr32 = degrade(hr.float(), 3)
    assert lr32.dtype == torch.float32
    torch.testing.assert_close(lr32.double(), degrade(hr, 3), rtol=0, atol=1e-6)


def test_uint8_mode_rounds_input_and_each_pass():
    x = torch.rand(1, 9, 12, dtype=torch.float64)
    q = torch.floor(x * 255 + 0.5)  # im2uint8
    # rows first on equal scales, as MATLAB; rounding on the 0..255 scale
    rows = torch.floor(imresize(q, (0.5, 1.0)).clamp(0, 255) + 0.5)
    both = torch.floor(imresize(rows, (1.0, 0.5)).clamp(0, 255) + 0.5) / 255
    torch.testing.assert_close(imresize(x, 0.5, uint8=True), both, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_degrade_sizes_are_exact(s):
    for h in (s * 5, s * 5 + 1, s * 7 + s - 1):
        lr = degrade(torch.rand(1, 3, h, h + 2), s)
        assert lr.shape == (1, 3, h // s, (h + 2) // s)


# ---------------------------------------------------------------------------------------
# (e) Bad inputs.


@pytest.mark.parametrize("scale", [0, -0.5, float("nan"), float("inf")])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        imresize(torch.rand(3, 8, 8), scale)


def test_bad_inputs():
    with pytest.raises(TypeError, match="float"):
        imresize(torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8), 0.5)
    with pytest.raises(TypeError, match="numpy"):
        imresize(np.zeros((8, 8)), 0.5)
    with pytest.raises(ValueError, match="empty"):
        imresize(torch.rand(3, 0, 8), 0.5)
    with pytest.raises(ValueError, match="2 dimensions"):
        imresize(torch.rand(8), 0.5)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(torch.rand(3, 8, 8), 0.5, size=(4, 4))
    with pytest.raises(ValueError, match=">= 1"):
        imresize(torch.rand(3, 8, 8), size=(0, 4))
    with pytest.raises(ValueError, match="whole"):
        imresize(torch.rand(3, 8, 8), size=(2.5, 4))
    with pytest.raises(ValueError, match="scale"):
        degrade(torch.rand(3, 8, 8), 2.5)
    with pytest.raises(ValueError, match="smaller"):
        modcrop(torch.rand(3, 2, 8), 3)
    with pytest.raises(TypeError, match="float"):
        degrade(torch.zeros(3, 8, 8, dtype=torch.uint8), 2)


def test_matlab_uint8_rounding_differs_from_rounding_once_as_documented():
    """imresize's docstring: 10-15 % of LR values differ from a float pipeline rounded
    once, by more than 1 level only next to saturated edges (clipped overshoot)."""
    from edsr_lab.data import load_sample
    from edsr_lab.metrics import quantize

    hr = quantize(modcrop(load_sample("natural_coffee"), 2))
    matlab = degrade(hr, 2)
    once = quantize(degrade(hr, 2, quantize=False))
    levels = ((matlab - once).abs() * 255).round()
    assert 0.10 < float((levels > 0).float().mean()) < 0.16
    assert int(levels.max()) >= 5
    # the big differences sit where the first (row) pass leaves [0, 1]
    first = imresize(hr.double(), (0.5, 1.0))
    clipped = ((first < -0.5 / 255) | (first > 1 + 0.5 / 255)).any(0).double()[None, None]
    near = torch.nn.functional.max_pool2d(clipped, (1, 9), stride=1, padding=(0, 4))
    near = near[0, 0, :, ::2][:, : levels.shape[-1]] > 0
    big = levels.amax(0) >= 2
    assert big.any() and bool(near[big].all())
