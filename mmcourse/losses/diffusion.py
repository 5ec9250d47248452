"""Denoising diffusion (DDPM, Ho et al. 2020): the noise schedule, the forward process in closed form, the
ε-prediction loss, and one reverse step of each sampler (DDPM's ancestral step, DDIM's deterministic one).

    α_t = 1 − β_t,   ᾱ_t = Π_{s ≤ t} α_s
    q(x_t | x_0):    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,   ε ~ N(0, I)
    loss:            ‖ε − ε_θ(x_t, t)‖²   (mean over every element)

Timesteps are 0-based, t = 0 … T−1: t = 0 is the least noisy step. Sampling runs t = T−1 … 0, and the last step
(t = 0) returns the predicted mean with no noise added: noise there would be left in the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.utils import check_number, check_tensor

__all__ = ["NoiseSchedule", "diffusion_loss", "noise_like"]


class NoiseSchedule(nn.Module):
    """β_1 … β_T and the quantities derived from them, as buffers that follow the module's device.

    `NoiseSchedule.cosine(T)` (Nichol & Dhariwal 2021, s = 0.008) or `NoiseSchedule.linear(T)` (Ho et al.: β from
    1e-4 to 0.02 at T = 1000, scaled by 1000 / T so that a shorter chain destroys the image as fully)."""

    def __init__(self, betas: Tensor):
        super().__init__()
        check_tensor(betas, "betas", ndim=1, dtype="float")
        if len(betas) < 2 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError(f"betas: expected at least 2 values, each in (0, 1), got {len(betas)} values in "
                             f"[{betas.min().item():.3g}, {betas.max().item():.3g}]")
        betas = betas.double()
        alpha_bar = torch.cumprod(1 - betas, 0)
        for name, value in dict(betas=betas, alphas=1 - betas, alpha_bar=alpha_bar,
                                alpha_bar_prev=F.pad(alpha_bar[:-1], (1, 0), value=1.0)).items():
            self.register_buffer(name, value.float(), persistent=False)

    @classmethod
    def linear(cls, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        check_number(T, "T", integer=True, low=2)
        scale = 1000 / T
        return cls(torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008) -> NoiseSchedule:
        """ᾱ(t) = f(t) / f(0) with f(t) = cos²(π/2 · (t/T + s) / (1 + s)); β_t = 1 − ᾱ_t / ᾱ_{t−1}, at most 0.999."""
        check_number(T, "T", integer=True, low=2)
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
        return cls((1 - f[1:] / f[:-1]).clamp(max=0.999))

    @property
    def T(self) -> int:
        return len(self.betas)

    def check_t(self, t: Tensor | int, batch: int | None = None) -> Tensor:
        """t as a long tensor on the schedule's device; ValueError unless every t is in [0, T)."""
        t = torch.as_tensor(t, device=self.betas.device)
        if t.is_floating_point() or t.is_complex():
            raise TypeError(f"timesteps must be integers, got dtype {t.dtype}")
        if t.numel() and (t.min() < 0 or t.max() >= self.T):
            raise ValueError(f"timesteps must lie in [0, T) = [0, {self.T}), got values from {t.min().item()} to "
                             f"{t.max().item()}")
        if batch is not None and t.ndim == 1 and len(t) != batch:
            raise ValueError(f"timesteps: expected one per image ({batch}), got {len(t)}")
        return t.long()

    def _at(self, values: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """values[t] shaped to broadcast over x (B, ...): one value per sample, or one for all."""
        v = values[t]
        return v.reshape(-1, *([1] * (x.ndim - 1))) if v.ndim else v

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for x0 and noise (B, ...), t (B,) or one int."""
        check_tensor(noise, "noise", shape=tuple(x0.shape), dtype="float")
        t = self.check_t(t, len(x0))
        a = self._at(self.alpha_bar, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """The clean image the noise prediction implies: x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t."""
        t = self.check_t(t, len(x_t))
        a = self._at(self.alpha_bar, t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def ddpm_step(self, x_t: Tensor, t: int, eps: Tensor, generator: torch.Generator | None = None,
                  clip: float | None = 1.0) -> Tensor:
        """x_{t−1} ~ p(x_{t−1} | x_t): the posterior mean given the predicted x_0 (clamped to ±clip unless None),
        plus σ_t z with σ_t² = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) — except at t = 0, which returns the mean."""
        t = int(self.check_t(t))
        x0 = self.predict_x0(x_t, t, eps)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        a_bar, a_prev, beta = self.alpha_bar[t], self.alpha_bar_prev[t], self.betas[t]
        mean = (beta * a_prev.sqrt() * x0 + (1 - a_prev) * self.alphas[t].sqrt() * x_t) / (1 - a_bar)
        if t == 0:
            return mean
        sigma = (beta * (1 - a_prev) / (1 - a_bar)).sqrt()
        return mean + sigma * noise_like(x_t, generator)

    def ddim_step(self, x_t: Tensor, t: int, t_prev: int, eps: Tensor, clip: float | None = 1.0) -> Tensor:
        """Song et al.'s deterministic step (η = 0) from t to t_prev < t, skipping the steps between:
        x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev) ε. t_prev = −1 returns x̂_0 itself."""
        t = int(self.check_t(t))
        if not -1 <= t_prev < t:
            raise ValueError(f"t_prev must lie in [-1, t) = [-1, {t}), got {t_prev}")
        x0 = self.predict_x0(x_t, t, eps)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x_t - self.alpha_bar[t].sqrt() * x0) / (1 - self.alpha_bar[t]).sqrt()
        a_prev = self.alpha_bar[t_prev] if t_prev >= 0 else self.alpha_bar.new_ones(())
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The descending timesteps a sampler visits: all T (DDPM), or `steps` of them evenly spaced from T−1 down
        to 0 (DDIM; one step is T−1 alone)."""
        if steps is None:
            return list(range(self.T - 1, -1, -1))
        check_number(steps, "steps", integer=True, low=1, high=self.T)
        if steps == 1:
            return [self.T - 1]
        return sorted({round(i * (self.T - 1) / (steps - 1)) for i in range(steps)}, reverse=True)


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise of x's shape, dtype and device, drawn from `generator` on its own device (a CPU
    generator gives the same numbers whatever device x is on), or from torch's global generator when None."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def diffusion_loss(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """The simple DDPM objective: mean squared error between the predicted and the true noise."""
    check_tensor(eps_pred, "eps_pred", shape=tuple(eps.shape), dtype="float")
    return F.mse_loss(eps_pred, eps)
