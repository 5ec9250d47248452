"""Chapter 06's checks: other right ways to write each answer pass; the fix check names the noise left by the last
step; the experiment's budget is enforced before anything is sampled."""

import pytest
import torch

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch06


def test_q_sample_written_with_gather_and_views_passes(capsys):
    def gathered(x0, t, noise, alpha_bar):
        a = alpha_bar.gather(0, t).view(len(t), *([1] * (x0.ndim - 1)))
        return torch.sqrt(a) * x0 + torch.sqrt(1.0 - a) * noise

    check("06.q_sample", gathered)
    assert capsys.readouterr().out.startswith("✓ 06.q_sample")


def test_ddim_step_through_the_implied_noise_passes(capsys):
    def via_coefficients(x_t, t, t_prev, eps, alpha_bar):
        a = alpha_bar[t]
        a_prev = alpha_bar[t_prev] if t_prev != -1 else a.new_tensor(1.0)
        return (a_prev / a).sqrt() * x_t + ((1 - a_prev).sqrt() - (a_prev * (1 - a) / a).sqrt()) * eps

    check("06.ddim_step", via_coefficients)
    assert capsys.readouterr().out.startswith("✓ 06.ddim_step")


def test_a_sampler_that_multiplies_the_last_noise_by_zero_passes(capsys):
    def masked(eps_fn, betas, shape, generator):
        alphas, alpha_bar = 1 - betas, torch.cumprod(1 - betas, 0)
        x = torch.randn(shape, generator=generator).to(betas.device)
        for t in reversed(range(len(betas))):
            x = (x - betas[t] / (1 - alpha_bar[t]).sqrt() * eps_fn(x, t)) / alphas[t].sqrt()
            z = torch.randn(shape, generator=generator).to(betas.device)  # drawn at t = 0 too: harmless, it is last
            x = x + float(t > 0) * betas[t].sqrt() * z
        return x

    check("06.fix_sampler", masked)
    assert capsys.readouterr().out.startswith("✓ 06.fix_sampler")


def test_the_fix_check_names_the_noise_left_at_the_end():
    with pytest.raises(CheckFailed, match=r"noise is left in the final sample: .* std 0\.0\d+, which is σ_0"):
        check("06.fix_sampler", ch06._sampler_noise_at_the_end)


def test_the_experiment_refuses_a_slow_sampler_before_sampling(monkeypatch):
    monkeypatch.setattr(ch06, "_models", lambda: pytest.fail("sampled although the choice was over the budget"))
    with pytest.raises(CheckFailed, match="at most 10 times"):
        check("06.fast_sampler", lambda: {"guidance": 1.0, "steps": 25})
    with pytest.raises(CheckFailed, match="guidance"):
        check("06.fast_sampler", lambda: {"guidance": True, "steps": 5})
