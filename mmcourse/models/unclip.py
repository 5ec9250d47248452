"""unCLIP (Ramesh et al. 2022, "DALL·E 2"): text -> CLIP text embedding -> prior -> CLIP image embedding -> decoder.

    prior:    z_t (B, D) -> ẑ_i (B, D), unit length        regresses the clean image embedding
    decoder:  x_t (B, 3, S, S), t (B,), z_i (B, D) -> ε̂   a UNet whose time embedding gets + Linear(z_i)

The decoder inverts CLIP's image encoder: it learns to draw an image from the embedding of that image. During
training its conditioning is dropped (set to zero) with probability `p_uncond`, so the same network also predicts
the unconditional ε̂(x_t, t, ∅); classifier-free guidance (Ho & Salimans 2021) samples with

    ε̃ = ε̂(x_t, t, z) + w · (ε̂(x_t, t, z) − ε̂(x_t, t, ∅)),   w ≥ 0   (w = 0: the conditional model as trained).

The paper's prior is a diffusion model (or an autoregressive one) over image embeddings that also predicts the
clean embedding; ours is a regressor of it, which is what that prior's mean is. `Judge` is not part of unCLIP: it is
a small CNN, trained on the world's images without CLIP, that reads a sample's colour and shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.losses.diffusion import NoiseSchedule, diffusion_loss, noise_like
from mmcourse.nn.unet import UNet
from mmcourse.utils import check_number, check_sizes, check_tensor, make_generator

__all__ = ["UnCLIP", "UnCLIPDecoder", "Prior", "Judge"]


class UnCLIPDecoder(nn.Module):
    """A diffusion decoder of images (B, 3, image_size, image_size) in [0, 1] from CLIP image embeddings (B, embed_dim).

    Images are scaled to [−1, 1] inside: `loss` takes and `sample` returns images in [0, 1]."""

    def __init__(self, embed_dim: int, image_size: int = 16, width: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 T: int = 200, schedule: str = "cosine", p_uncond: float = 0.1):
        super().__init__()
        check_sizes(embed_dim=embed_dim)
        check_number(p_uncond, "p_uncond", low=0, high=1)
        if schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
        self.embed_dim, self.p_uncond = embed_dim, p_uncond
        self.unet = UNet(image_size, 3, width, mults)
        self.clip_proj = nn.Linear(embed_dim, self.unet.emb_dim)
        self.schedule = getattr(NoiseSchedule, schedule)(T)

    def eps(self, x_t: Tensor, t: Tensor, image_embeds: Tensor | None) -> Tensor:
        """ε̂ for x_t (B, 3, S, S) at timesteps t (B,), given image_embeds (B, D) or nothing (None: unconditional)."""
        cond = None
        if image_embeds is not None:
            check_tensor(image_embeds, "image_embeds", shape=(len(x_t), self.embed_dim), dtype="float")
            cond = self.clip_proj(image_embeds)
        return self.unet(x_t, self.schedule.check_t(t, len(x_t)), cond)

    def loss(self, images: Tensor, image_embeds: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """ε-prediction MSE at a uniform random t per image; each image's conditioning dropped with p_uncond."""
        S = self.unet.image_size
        check_tensor(images, "images", shape=("B", 3, S, S), dtype="float")
        check_tensor(image_embeds, "image_embeds", shape=(len(images), self.embed_dim), dtype="float")
        B, device = len(images), images.device
        g_device = generator.device if generator is not None else device
        x0 = images * 2 - 1
        t = torch.randint(0, self.schedule.T, (B,), generator=generator, device=g_device).to(device)
        noise = noise_like(x0, generator)
        keep = (torch.rand(B, 1, generator=generator, device=g_device) >= self.p_uncond).float().to(device)
        cond = self.clip_proj(image_embeds) * keep
        return diffusion_loss(self.unet(self.schedule.q_sample(x0, t, noise), t, cond), noise)

    def guided_eps(self, x_t: Tensor, t: int, image_embeds: Tensor, guidance: float) -> Tensor:
        """Classifier-free guided ε̃ at one timestep t for the whole batch (one batched pass when guidance > 0)."""
        tt = torch.full((len(x_t),), t, device=x_t.device, dtype=torch.long)
        cond = self.clip_proj(image_embeds)
        if guidance == 0:
            return self.unet(x_t, tt, cond)
        eps_c, eps_u = self.unet(torch.cat([x_t, x_t]), torch.cat([tt, tt]),
                                 torch.cat([cond, torch.zeros_like(cond)])).chunk(2)
        return eps_c + guidance * (eps_c - eps_u)

    @torch.no_grad()
    def sample(self, image_embeds: Tensor, guidance: float = 0.0, steps: int | None = None,
               seed: int | torch.Generator = 0,
               return_trajectory: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Images (B, 3, S, S) in [0, 1] drawn for image_embeds (B, D).

        steps=None: DDPM's ancestral sampler over all T steps; an int: DDIM over that many evenly spaced steps.
        With return_trajectory=True also returns x_t (in [0, 1]) after every step, the first being pure noise."""
        check_tensor(image_embeds, "image_embeds", shape=("B", self.embed_dim), dtype="float")
        check_number(guidance, "guidance", low=0)
        S, device, sched = self.unet.image_size, image_embeds.device, self.schedule
        g = make_generator(seed, "unclip-sample")
        x = torch.randn(len(image_embeds), 3, S, S, generator=g).to(device)
        ts = sched.timesteps(steps)
        trajectory = [x]
        for i, t in enumerate(ts):
            eps = self.guided_eps(x, t, image_embeds, guidance)
            if steps is None:
                x = sched.ddpm_step(x, t, eps, generator=g)
            else:
                x = sched.ddim_step(x, t, ts[i + 1] if i + 1 < len(ts) else -1, eps)
            trajectory.append(x)
        images = ((x + 1) / 2).clamp(0, 1)
        if return_trajectory:
            return images, [((x + 1) / 2).clamp(0, 1) for x in trajectory]
        return images


class Prior(nn.Module):
    """CLIP text embedding (B, D) -> predicted CLIP image embedding (B, D), unit length: a residual MLP."""

    def __init__(self, embed_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        check_sizes(embed_dim=embed_dim, hidden=hidden, layers=layers)
        self.embed_dim = embed_dim
        self.inp = nn.Linear(embed_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU())
                                    for _ in range(layers))
        self.out = nn.Linear(hidden, embed_dim)

    def forward(self, text_embeds: Tensor) -> Tensor:
        check_tensor(text_embeds, "text_embeds", shape=("B", self.embed_dim), dtype="float")
        h = self.inp(text_embeds)
        for block in self.blocks:
            h = h + block(h)
        return F.normalize(self.out(h), dim=-1)

    def loss(self, text_embeds: Tensor, image_embeds: Tensor) -> Tensor:
        """1 − cosine similarity between the prediction and the true (normalised) image embedding, averaged."""
        check_tensor(image_embeds, "image_embeds", shape=(len(text_embeds), self.embed_dim), dtype="float")
        return 1 - (self(text_embeds) * F.normalize(image_embeds, dim=-1)).sum(-1).mean()


class UnCLIP(nn.Module):
    """The prior and the decoder together: CLIP text embeddings (B, D) -> images (B, 3, S, S) in [0, 1]."""

    def __init__(self, prior: Prior, decoder: UnCLIPDecoder):
        super().__init__()
        if prior.embed_dim != decoder.embed_dim:
            raise ValueError(f"the prior predicts {prior.embed_dim}-d embeddings, the decoder reads "
                             f"{decoder.embed_dim}-d ones")
        self.prior, self.decoder = prior, decoder

    @torch.no_grad()
    def generate(self, text_embeds: Tensor, use_prior: bool = True, **sample_kw) -> Tensor:
        """Images for text_embeds (B, D): the decoder reads the prior's image embedding, or (use_prior=False)
        the text embedding itself. sample_kw go to `UnCLIPDecoder.sample` (guidance, steps, seed)."""
        z = self.prior(text_embeds) if use_prior else F.normalize(text_embeds, dim=-1)
        return self.decoder.sample(z, **sample_kw)


class Judge(nn.Module):
    """Reads a (B, 3, S, S) image in [0, 1]: (colour logits (B, n_colours), shape logits (B, n_shapes))."""

    def __init__(self, n_colours: int, n_shapes: int, image_size: int = 16, width: int = 32):
        super().__init__()
        check_sizes(n_colours=n_colours, n_shapes=n_shapes, image_size=image_size, width=width)
        self.image_size, self.n_colours = image_size, n_colours
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
            nn.Flatten())
        self.head = nn.Linear(2 * width, n_colours + n_shapes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        S = self.image_size
        check_tensor(images, "images", shape=("B", 3, S, S), dtype="float")
        logits = self.head(self.features(images))
        return logits[:, :self.n_colours], logits[:, self.n_colours:]
