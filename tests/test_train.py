"""Tests of edsr_lab.train with a tiny model and a stub sampler (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edsr_lab.errors import CheckpointError, CheckpointExistsError
from edsr_lab.profile import activation_memory, conv_flops, measure_step
from edsr_lab.train import (
    History,
    TrainConfig,
    load_training_checkpoint,
    train,
)


class TinySR(nn.Module):
    """conv -> PixelShuffle: the smallest sub-pixel SR network."""

    def __init__(self, scale: int = 2, bn: bool = False, feats: int = 8):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.bn = nn.BatchNorm2d(feats) if bn else nn.Identity()
        self.act = nn.ReLU()
        self.tail = nn.Conv2d(feats, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.act(self.bn(self.head(x)))))


class StubSampler:
    """Random HR patches; LR = 2x2 average (a task a conv + shuffle can learn).

    Deterministic given the seed, and it saves/restores its RNG like a real sampler should.
    """

    def __init__(self, scale: int = 2, batch: int = 4, patch: int = 8, seed: int = 0):
        self.scale, self.batch, self.patch = scale, batch, patch
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch * self.scale
        hr = torch.rand(self.batch, 3, p, p, generator=self.gen)
        hr = F.interpolate(F.avg_pool2d(hr, 4), scale_factor=4, mode="bilinear")  # smooth
        lr = F.avg_pool2d(hr, self.scale)
        return lr, hr

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def _model(seed: int = 0, cls: type = None, **kw) -> TinySR:
    torch.manual_seed(seed)
    return (cls or TinySR)(**kw)


def _cfg(**kw) -> TrainConfig:
    base = {"iters": 30, "lr": 1e-3, "log_every": 10, "amp": "off"}
    base.update(kw)
    return TrainConfig(**base)


def test_config_defaults_are_the_papers():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.patch_size, cfg.loss) == (16, 48, "l1")
    assert (cfg.lr, cfg.lr_decay_every, cfg.lr_gamma) == (1e-4, 200_000, 0.5)
    assert cfg.betas == (0.9, 0.999) and cfg.eps == 1e-8
    assert TrainConfig.paper_recipe().iters == 300_000
    assert TrainConfig.paper_recipe(final=True).iters == 1_000_000
    q = TrainConfig.quick(30)
    assert q.iters == 30 and q.lr_decay_every == 20 and q.lr == 1e-4


@pytest.mark.parametrize(
    "field, value",
    [("loss", "l3"), ("amp", "fp16"), ("iters", 0), ("lr", 0.0), ("grad_clip", -1.0)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        train(_model(), StubSampler(), _cfg(**{field: value}), progress=False, device="cpu")


def test_bf16_on_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA"):
        train(_model(), StubSampler(), _cfg(amp="bf16"), progress=False, device="cpu")


def test_training_reduces_loss_and_records_history():
    h = train(_model(), StubSampler(), _cfg(iters=60, lr=3e-3), progress=False, device="cpu")
    assert isinstance(h, History) and len(h) == 60
    assert h.step == list(range(1, 61))
    first, last = sum(h.loss[:5]) / 5, sum(h.loss[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    assert all(math.isfinite(g) and g > 0 for g in h.grad_norm)
    assert h.time == sorted(h.time)
    assert not h.diverged and h.diverged_step is None
    assert h.config["iters"] == 60


def test_loss_selection_l1_vs_l2():
    h1 = train(_model(), StubSampler(), _cfg(iters=1, loss="l1"), progress=False, device="cpu")
    h2 = train(_model(), StubSampler(), _cfg(iters=1, loss="l2"), progress=False, device="cpu")
    # Recompute the first step's loss by hand: same init, same batch.
    model, (lr, hr) = _model(), StubSampler().sample()
    with torch.no_grad():
        sr = model(lr)
    assert h1.loss[0] == pytest.approx(F.l1_loss(sr, hr).item(), rel=1e-5)
    assert h2.loss[0] == pytest.approx(F.mse_loss(sr, hr).item(), rel=1e-5)
    assert h1.loss[0] != pytest.approx(h2.loss[0])


def test_lr_halves_every_decay_period():
    h = train(_model(), StubSampler(), _cfg(iters=12, lr_decay_every=5), progress=False)
    assert h.lr == [1e-3] * 5 + [5e-4] * 5 + [2.5e-4] * 2


def test_overrides_by_keyword():
    h = train(_model(), StubSampler(), None, iters=3, amp="off", progress=False, device="cpu")
    assert len(h) == 3 and h.lr[0] == 1e-4


def test_divergence_is_reported_not_raised(capsys):
    h = train(
        _model(), StubSampler(), _cfg(iters=50, lr=1e30, loss="l2"), progress=True, device="cpu"
    )
    assert h.diverged
    assert h.diverged_step is not None and h.diverged_step < 50
    assert h.step[-1] == h.diverged_step and not math.isfinite(h.loss[-1])
    assert "diverged" in capsys.readouterr().out


def test_spikes_are_recorded():
    class SpikySampler(StubSampler):
        calls = 0

        def sample(self):
            lr, hr = super().sample()
            self.calls += 1
            if self.calls == 25:
                hr = hr + 50.0  # one absurd batch: loss jumps far above the median
            return lr, hr

    h = train(_model(), SpikySampler(), _cfg(iters=30, lr=1e-4), progress=False, device="cpu")
    assert not h.diverged
    assert [s for s, _ in h.spikes] == [25]


def test_early_spikes_are_recorded_too():
    class EarlySpike(StubSampler):
        calls = 0

        def sample(self):
            lr, hr = super().sample()
            self.calls += 1
            return lr, (hr + 50.0 if self.calls == 5 else hr)

    h = train(_model(), EarlySpike(), _cfg(iters=8, lr=1e-4), progress=False, device="cpu")
    assert [s for s, _ in h.spikes] == [5]


def test_eval_fn_and_callback():
    seen_modes = []

    def eval_fn(model):
        seen_modes.append(model.training)
        return {"psnr": 20.0 + len(seen_modes)}

    calls = []

    def callback(step, history):
        calls.append((step, len(history)))
        return step >= 20  # stop early

    model = _model()
    h = train(
        model,
        StubSampler(),
        _cfg(iters=40, eval_every=10),
        eval_fn=eval_fn,
        callback=callback,
        progress=False,
    )
    assert calls == [(10, 10), (20, 20)]
    assert h.stopped_early and len(h) == 20
    assert [e["step"] for e in h.evals] == [10, 20]
    assert h.eval_series("psnr") == ([10, 20], [21.0, 22.0])
    assert seen_modes == [False, False] and model.training


def test_resume_gives_identical_lr_and_losses(tmp_path):
    cfg = _cfg(iters=20, lr=1e-3, lr_decay_every=7)
    full = train(_model(), StubSampler(), cfg, progress=False, device="cpu")

    path = tmp_path / "run.pt"
    first = train(_model(), StubSampler(), cfg, iters=9, checkpoint_path=str(path), progress=False)
    assert len(first) == 9 and path.is_file()
    # A fresh model/sampler, as after a restart: everything comes from the checkpoint.
    resumed = train(
        _model(seed=123),
        StubSampler(seed=999),
        cfg,
        checkpoint_path=str(path),
        resume_from=path,
        progress=False,
    )
    assert resumed.step == full.step
    assert resumed.lr == full.lr  # the official code's resume bug: lr restarted at 1e-4
    assert resumed.lr[9] == 1e-3 * 0.5  # step 10 is after the first decay (every 7)
    assert resumed.loss == pytest.approx(full.loss, rel=1e-6, abs=1e-9)
    ckpt = load_training_checkpoint(path)
    assert ckpt["step"] == 20


def test_checkpoint_is_weights_only_loadable_and_complete(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"
    model = _model()
    train(
        model,
        StubSampler(),
        _cfg(iters=10, checkpoint_every=4, checkpoint_path=str(path)),
        progress=False,
    )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    # One format: a model checkpoint (format "edsr_lab") plus the training state.
    assert raw["format"] == "edsr_lab" and raw["arch"] == "TinySR"
    assert raw["checksum"].startswith("sha256:")
    ckpt = raw["training"]
    assert ckpt["step"] == 10
    assert set(ckpt) >= {"optimizer", "scheduler", "config", "history", "sampler", "rng"}
    assert ckpt["config"]["iters"] == 10 and len(ckpt["history"]["loss"]) == 10
    fresh = _model(seed=5)
    fresh.load_state_dict(raw["state_dict"])
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    # Atomic: no temporary files are left next to the checkpoint.
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]


def test_refuses_to_overwrite_another_runs_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(b"someone else's precious checkpoint")
    with pytest.raises(CheckpointExistsError, match="overwrite=True") as info:
        train(_model(), StubSampler(), _cfg(iters=2, checkpoint_path=str(path)), progress=False)
    assert isinstance(info.value, FileExistsError)
    assert path.read_bytes() == b"someone else's precious checkpoint"
    train(
        _model(),
        StubSampler(),
        _cfg(iters=2, checkpoint_path=str(path), overwrite=True),
        progress=False,
    )
    assert load_training_checkpoint(path)["step"] == 2


def test_checkpoint_every_needs_a_path():
    with pytest.raises(ValueError, match="checkpoint_path"):
        train(_model(), StubSampler(), _cfg(checkpoint_every=5), progress=False)


def test_resume_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        train(_model(), StubSampler(), _cfg(), resume_from=tmp_path / "nope.pt", progress=False)
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not an edsr_lab training checkpoint"):
        train(_model(), StubSampler(), _cfg(), resume_from=bad, progress=False)
    good = tmp_path / "good.pt"
    train(_model(), StubSampler(), _cfg(iters=2, checkpoint_path=str(good)), progress=False)
    with pytest.raises(CheckpointError, match="does not fit"):
        train(_model(feats=4), StubSampler(), _cfg(iters=4), resume_from=good, progress=False)


def test_scale_mismatch_is_caught_before_training():
    with pytest.raises(ValueError, match="scale"):
        train(_model(scale=3), StubSampler(scale=2), _cfg(iters=2), progress=False)


def test_grad_clip_bounds_the_update():
    h = train(_model(), StubSampler(), _cfg(iters=5, grad_clip=1e-3), progress=False)
    assert len(h) == 5 and all(g > 1e-3 for g in h.grad_norm)  # norms are pre-clipping


def _weight_change(**config) -> float:
    """Largest change of any weight over 5 steps of training with these settings."""
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    train(model, StubSampler(), _cfg(iters=5, **config), progress=False, device="cpu")
    after = list(model.parameters())
    return max((p.detach() - b).abs().max().item() for p, b in zip(after, before, strict=True))


def test_grad_clip_clips_the_gradient_adam_sees():
    """Adam's update barely depends on the gradient's scale, except through eps
    (config.adam_eps, about 4e-11): a gradient clipped to a norm of 1e-14 is far below it,
    so the weights hardly move. Recording the norm without clipping would move them by
    about the lr per step, as without clipping."""
    free = _weight_change()
    clipped = _weight_change(grad_clip=1e-14)
    assert free > 1e-3 and clipped < 0.01 * free, (free, clipped)


def test_history_roundtrip_and_smoothing():
    h = History(step=[1, 2, 3], loss=[3.0, 1.0, 2.0], lr=[1.0] * 3, time=[0.1, 0.2, 0.3])
    h.grad_norm = [1.0] * 3
    h.spikes = [(2, 1.0)]
    back = History.from_dict(h.to_dict())
    assert back == h
    assert h.smoothed("loss", window=2) == [3.0, 2.0, 1.5]
    assert "3 steps" in repr(h)


def test_activation_memory_is_larger_with_batch_norm():
    x = torch.rand(2, 3, 16, 16)
    plain = activation_memory(_model(), x)
    with_bn = activation_memory(_model(bn=True), x)
    assert plain > 0
    # BN saves its input, and its output is a new tensor saved by the next layer.
    assert with_bn >= plain + 2 * 8 * 16 * 16 * 4
    assert activation_memory(_model(), torch.rand(4, 3, 16, 16)) == 2 * plain


def test_conv_flops_by_hand():
    model = _model()
    x = torch.rand(1, 3, 10, 10)
    head = 2 * (8 * 10 * 10) * 3 * 9
    tail = 2 * (12 * 10 * 10) * 8 * 9
    assert conv_flops(model, x) == head + tail


def test_measure_step_reports_speed():
    model = _model()
    before = [p.clone() for p in model.parameters()]
    r = measure_step(model, steps=3, warmup=1, batch_size=2, patch_size=8, device="cpu")
    assert r["it_per_s"] > 0 and r["ms_per_step"] == pytest.approx(1e3 / r["it_per_s"])
    assert len(r["ms_per_step_all"]) == 3
    assert r["peak_mem_bytes"] is None and r["activation_bytes"] > 0
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)  # the caller's model is not trained


def test_bench_script_runs_tiny(capsys):
    import importlib.util

    from edsr_lab.config import PROJECT_ROOT

    path = PROJECT_ROOT / "benchmarks" / "bench_train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--device", "cpu", "--tiny", "--steps", "2", "--warmup", "0"])
    assert [r["model"] for r in rows] == ["edsr_baseline_x2", "edsr_x2", "edsr_x4"]
    for r in rows:
        assert r["reference"]["it_per_s"] > 0 and r["tuned"]["it_per_s"] > 0
        assert r["tflop_per_step"] > 0 and r["ratio"] > 0
    out = capsys.readouterr().out
    assert "reference it/s" in out and "edsr_x4" in out


class TippingSR(TinySR):
    """TinySR whose output turns NaN once a weight passes ``limit``: like a diverging
    EDSR, its weights stay finite while every batch already gives a NaN loss."""

    limit = 0.0

    def forward(self, x):
        y = super().forward(x)
        return y * math.nan if self.tail.weight.detach().abs().max() > self.limit else y


class FarTarget(StubSampler):
    """HR far above what the model outputs: every Adam step pushes the weights the same way."""

    def sample(self):
        lr, hr = super().sample()
        return lr, hr + 100.0


def test_kept_checkpoint_after_divergence_gives_a_finite_loss(tmp_path):
    path = tmp_path / "run.pt"
    model = _model(cls=TippingSR)
    model.limit = float(model.tail.weight.detach().abs().max()) + 5.5 * 0.1  # crossed at step ~6
    h = train(
        model,
        FarTarget(),
        _cfg(iters=30, lr=0.1, checkpoint_every=1, checkpoint_path=str(path)),
        progress=False,
        device="cpu",
    )
    assert h.diverged and 3 <= h.diverged_step <= 12, h.diverged_step
    ckpt = load_training_checkpoint(path)
    assert ckpt["step"] < h.diverged_step - 1  # the step before already gave NaN weights
    assert h.skipped_checkpoints == [h.diverged_step - 1]
    # The kept weights give a finite loss on the batches a resumed run would see next.
    kept = _model(cls=TippingSR)
    kept.limit = model.limit
    kept.load_state_dict(ckpt["model"])
    sampler = FarTarget()
    sampler.load_state_dict(ckpt["sampler"]["state_dict"])
    with torch.no_grad():
        for _ in range(2):
            lr, hr = sampler.sample()
            assert math.isfinite(F.l1_loss(kept(lr), hr).item())


def test_an_infinite_loss_is_divergence_too(capsys):
    """+inf (not only nan) stops training: here the 4th batch's HR is +inf."""

    class InfiniteTarget(StubSampler):
        calls = 0

        def sample(self):
            lr, hr = super().sample()
            self.calls += 1
            return lr, (torch.full_like(hr, math.inf) if self.calls == 4 else hr)

    h = train(_model(), InfiniteTarget(), _cfg(iters=10), progress=True, device="cpu")
    assert h.diverged and h.diverged_step == 4 and h.loss[-1] == math.inf
    assert len(h) == 4 and "diverged" in capsys.readouterr().out


class NearlyRight(TinySR):
    """Nearest-neighbour upscaling plus a small learned correction: errors of about 0.01
    from the first step, where an L1 value is some 60x the L2 value."""

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + 0.01 * super().forward(x)


def test_an_l2_run_with_small_errors_saves_every_checkpoint(tmp_path):
    """The check before each save (do these weights still give a sane loss?) measures the
    run's own loss: an L1 value judged against an L2 history would look like an explosion
    and skip every save."""
    path = tmp_path / "run.pt"
    cfg = _cfg(iters=12, loss="l2", checkpoint_every=4, checkpoint_path=str(path))
    h = train(_model(cls=NearlyRight), StubSampler(), cfg, progress=False, device="cpu")
    assert not h.diverged and max(h.loss) < 1e-3  # the case under test: small L2 losses
    assert h.skipped_checkpoints == []
    assert load_training_checkpoint(path)["step"] == 12


def test_no_checkpoint_when_even_the_first_step_explodes(tmp_path):
    path = tmp_path / "run.pt"
    h = train(
        _model(),
        StubSampler(),
        _cfg(iters=50, lr=1e30, loss="l2", checkpoint_every=1, checkpoint_path=str(path)),
        progress=False,
        device="cpu",
    )
    assert h.diverged and not path.exists()  # never a file of exploding weights


def test_conv_flops_counts_transposed_convolutions_too():
    x = torch.empty(2, 4, 5, 7, device="meta")
    deconv = torch.nn.ConvTranspose2d(4, 6, kernel_size=3, stride=2).to("meta")
    # every input pixel scatters a 3x3 kernel into each of the 6 output channels
    assert conv_flops(deconv, x) == 2 * (2 * 4 * 5 * 7) * 6 * 3 * 3
    conv = torch.nn.Conv2d(4, 6, kernel_size=3, padding=1).to("meta")
    assert conv_flops(conv, x) == 2 * (2 * 6 * 5 * 7) * 4 * 3 * 3


def test_conv_flops_of_a_model_in_eval_mode_on_meta():
    from edsr_lab.models import edsr_baseline

    model = edsr_baseline(2).eval().to("meta")
    assert conv_flops(model, torch.empty(1, 3, 48, 48, device="meta")) > 0


# ------------------------------------------------------------------ MDSR: (lr, hr, scale)


class ScaleSequence:
    """Batches at the scales of ``order`` in turn: ``(lr, hr, scale)`` like MDSR training."""

    def __init__(self, order=(2, 4, 3), seed: int = 0):
        self.order, self.i = list(order), 0
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self):
        scale = self.order[self.i % len(self.order)]
        self.i += 1
        hr = torch.rand(2, 3, 6 * scale, 6 * scale, generator=self.gen)
        return F.avg_pool2d(hr, scale), hr, scale

    def state_dict(self):
        return {"i": self.i, "gen": self.gen.get_state()}

    def load_state_dict(self, state):
        self.i = state["i"]
        self.gen.set_state(state["gen"])


def _mdsr(seed: int = 0):
    from edsr_lab.models import MDSR

    torch.manual_seed(seed)
    return MDSR(1, 4, (2, 3, 4))


def _adam_state_by_name(model, ckpt):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {names[i]: s for i, s in ckpt["optimizer"]["state"].items()}


def test_a_scale_3_step_updates_only_the_shared_body_and_the_x3_modules(tmp_path):
    path = tmp_path / "mdsr.pt"
    cfg = _cfg(iters=2, lr=1e-3, checkpoint_path=str(path))
    train(_mdsr(), ScaleSequence(), cfg, progress=False, device="cpu")  # steps at x2 and x4
    before = load_training_checkpoint(path)
    model = _mdsr(seed=7)
    train(
        model, ScaleSequence(), cfg, iters=3, resume_from=path, progress=False, device="cpu"
    )  # x3
    after = load_training_checkpoint(path)
    assert after["step"] == 3
    adam_before, adam_after = _adam_state_by_name(model, before), _adam_state_by_name(model, after)
    x3 = ("pre_process.1.", "upsample.1.")
    other = ("pre_process.0.", "pre_process.2.", "upsample.0.", "upsample.2.")
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        changed = not torch.equal(before["model"][name], after["model"][name])
        if name.startswith(other):
            assert not changed, name
            assert all(
                torch.equal(adam_before[name][k], adam_after[name][k]) for k in adam_before[name]
            )
        elif name.startswith(x3):
            assert changed and name not in adam_before, name  # first x3 step
        else:  # head, shared body, tail
            assert changed, name
            assert int(adam_after[name]["step"]) == 3, name


def test_mdsr_resume_is_exact_and_loads_as_a_model(tmp_path):
    from edsr_lab.models import MDSR, load_checkpoint

    cfg = _cfg(iters=6, lr=1e-3)
    full = train(_mdsr(), ScaleSequence(), cfg, progress=False, device="cpu")
    path = tmp_path / "run.pt"
    train(
        _mdsr(),
        ScaleSequence(),
        cfg,
        iters=4,
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    resumed = train(
        _mdsr(seed=3),
        ScaleSequence(seed=9),
        cfg,
        resume_from=path,
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    assert resumed.loss == pytest.approx(full.loss, rel=1e-6, abs=1e-9)
    model = load_checkpoint(path)
    assert isinstance(model, MDSR) and model.scales == (2, 3, 4)


def test_a_batch_at_a_scale_the_model_lacks_is_a_clear_error():
    from edsr_lab.models import MDSR

    with pytest.raises(ValueError, match="scale"):
        train(
            MDSR(1, 4, (2, 3)),
            ScaleSequence(order=(4,)),
            _cfg(iters=1),
            progress=False,
            device="cpu",
        )


# ------------------------------------------------------- resume: no silent lr mismatch


def _lr_1000_run(tmp_path):
    path = tmp_path / "hot.pt"
    train(
        _model(),
        StubSampler(),
        _cfg(iters=1, lr=1000.0, checkpoint_path=str(path)),
        progress=False,
        device="cpu",
    )
    assert load_training_checkpoint(path)["config"]["lr"] == 1000.0
    return path


def test_resume_with_another_lr_is_refused_with_a_message(tmp_path):
    from edsr_lab.errors import ResumeConfigError

    path = _lr_1000_run(tmp_path)
    with pytest.raises(ResumeConfigError, match=r"lr 1000.0 -> 0.0001.*resume_changes='apply'"):
        train(
            _model(),
            StubSampler(),
            _cfg(iters=3, lr=1e-4),
            resume_from=path,
            progress=False,
            device="cpu",
        )


def test_resume_with_another_lr_applies_and_records_it_when_asked(tmp_path):
    path = _lr_1000_run(tmp_path)
    model = _model()
    stored = {k: v.clone() for k, v in load_training_checkpoint(path)["model"].items()}
    h = train(
        model,
        StubSampler(),
        _cfg(iters=3, lr=1e-4),
        resume_from=path,
        progress=False,
        resume_changes="apply",
        device="cpu",
    )
    assert h.lr == [1000.0, 1e-4, 1e-4]
    assert h.changes == [{"step": 1, "lr": [1000.0, 1e-4]}]
    # The optimizer really used 1e-4: two Adam steps move no weight by more than ~2e-4.
    moved = max((p.detach() - stored[n]).abs().max().item() for n, p in model.named_parameters())
    assert 0 < moved < 5e-4


def test_resume_applies_a_new_schedule_at_the_current_step(tmp_path):
    path = tmp_path / "run.pt"
    train(
        _model(),
        StubSampler(),
        _cfg(iters=6, lr=1e-3, checkpoint_path=str(path)),
        progress=False,
        device="cpu",
    )
    h = train(
        _model(),
        StubSampler(),
        _cfg(iters=9, lr=1e-3, lr_decay_every=4),
        resume_from=path,
        progress=False,
        resume_changes="apply",
        device="cpu",
    )
    # From step 7 on: the new schedule, halved at 4 and 8 -> 5e-4 for 7-8, 2.5e-4 at 9.
    assert h.lr[6:] == [5e-4, 5e-4, 2.5e-4]
    assert h.changes[0]["lr_decay_every"] == [200_000, 4]


def test_resume_may_always_extend_the_run(tmp_path):
    path = tmp_path / "run.pt"
    train(
        _model(),
        StubSampler(),
        _cfg(iters=3, checkpoint_path=str(path)),
        progress=False,
        device="cpu",
    )
    h = train(
        _model(), StubSampler(), _cfg(iters=5), resume_from=path, progress=False, device="cpu"
    )
    assert len(h) == 5 and h.changes == []


# -------------------------------------------------- the official optimisation, exactly


def _official_loop(model, sampler, steps, lr, eps):
    """The official EDSR-PyTorch update: L1 on 0..255 images, Adam(eps=1e-8)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=eps)
    for _ in range(steps):
        lr_batch, hr = sampler.sample()
        loss = F.l1_loss(model(lr_batch) * 255, hr * 255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_default_adam_matches_the_official_0_255_loss_update():
    cfg = _cfg(iters=20, lr=1e-4, log_every=20)
    ours = _model()
    train(ours, StubSampler(), cfg, progress=False, device="cpu")
    official = _official_loop(_model(), StubSampler(), 20, 1e-4, 1e-8)
    ours_unscaled = _model()  # eps 1e-8 on our [0, 1] loss: 255x stronger than official
    train(ours_unscaled, StubSampler(), cfg, rgb_range=1.0, progress=False, device="cpu")

    def max_diff(a, b):
        return max(
            (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
        )

    assert max_diff(ours, official) < 1e-6
    assert max_diff(ours_unscaled, official) > 10 * max(max_diff(ours, official), 1e-7)


def test_history_reports_the_loss_in_official_units():
    h = train(_model(), StubSampler(), _cfg(iters=2), progress=False, device="cpu")
    assert h.official_loss() == pytest.approx([v * 255 for v in h.loss])
    h2 = train(_model(), StubSampler(), _cfg(iters=2, loss="l2"), progress=False, device="cpu")
    assert h2.official_loss() == pytest.approx([v * 255**2 for v in h2.loss])


def test_official_decay_note_and_paper_schedule():
    cfg = TrainConfig()
    assert cfg.lr_decay_every == 200_000 and cfg.adam_eps == pytest.approx(1e-8 / 255)
    assert TrainConfig(loss="l2").adam_eps == pytest.approx(1e-8 / 255**2)


# ------------------------------------------------------------------------- progress


def test_progress_bar_shows_loss_lr_rate_and_eta(capsys):
    train(_model(), StubSampler(), _cfg(iters=20, log_every=5), progress=True, device="cpu")
    err = capsys.readouterr().err
    assert "20/20" in err and "it/s" in err and "loss" in err and "lr 1.00e-03" in err
    assert "on 0..255" in err and "<00:00" in err  # official-units loss and the ETA


def test_progress_false_is_silent(capsys, tmp_path):
    train(
        _model(),
        StubSampler(),
        _cfg(iters=5, checkpoint_path=str(tmp_path / "c.pt")),
        progress=False,
        device="cpu",
    )
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------- bugs no test caught before


class GlobalRNGSampler:
    """Draws from torch's global RNG and has no state of its own (like many simple
    samplers): only restoring the global RNG makes a resumed run see the same batches."""

    def sample(self):
        hr = torch.rand(4, 3, 16, 16)
        return F.avg_pool2d(hr, 2), hr


def test_resume_restores_the_global_rng(tmp_path):
    cfg = _cfg(iters=10, seed=3)
    full = train(_model(), GlobalRNGSampler(), cfg, progress=False, device="cpu")
    path = tmp_path / "run.pt"
    train(
        _model(),
        GlobalRNGSampler(),
        cfg,
        iters=5,
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    torch.manual_seed(12345)  # whatever happened in between
    resumed = train(
        _model(),
        GlobalRNGSampler(),
        cfg,
        resume_from=path,
        checkpoint_path=str(path),
        progress=False,
        device="cpu",
    )
    assert resumed.loss == pytest.approx(full.loss, rel=1e-6, abs=1e-9)


def test_spike_detector_uses_the_median_not_the_mean():
    class TwoSpikes(StubSampler):
        calls = 0

        def sample(self):
            lr, hr = super().sample()
            self.calls += 1
            # A first huge spike drags a running mean up (hiding the second spike), but
            # not the median.
            return lr, (hr + {10: 5000.0, 14: 50.0}.get(self.calls, 0.0))

    h = train(_model(), TwoSpikes(), _cfg(iters=16, lr=1e-4), progress=False, device="cpu")
    assert [s for s, _ in h.spikes] == [10, 14]


# ------------------------------------------------------------- wrapping (DDP, ranks)


def test_non_main_ranks_write_no_checkpoint_and_show_nothing(tmp_path, capsys):
    path = tmp_path / "run.pt"
    h = train(
        _model(),
        StubSampler(),
        _cfg(iters=4, checkpoint_every=2, checkpoint_path=str(path)),
        is_main=False,
        device="cpu",
    )
    assert len(h) == 4 and not path.exists()
    assert capsys.readouterr() == ("", "")


def test_a_wrapped_model_is_saved_and_evaluated_unwrapped(tmp_path):
    from edsr_lab.models import EDSR, load_checkpoint

    torch.manual_seed(0)
    inner = EDSR(1, 8, 2)
    wrapped = nn.DataParallel(inner)  # on CPU a pass-through, with DDP's .module layout
    seen = []
    path = tmp_path / "run.pt"
    train(
        wrapped,
        StubSampler(),
        _cfg(iters=2, checkpoint_path=str(path)),
        eval_fn=lambda m: seen.append(m) or {"psnr": 0.0},
        progress=False,
        device="cpu",
    )
    assert seen == [inner]
    loaded = load_checkpoint(path)  # keys without "module."
    for a, b in zip(loaded.state_dict().values(), inner.state_dict().values(), strict=True):
        assert torch.equal(a, b)
