"""Diffusion: the schedules against their formulas, the forward process in closed form, the two reverse steps
against the textbook ε-form (DDPM) and q_sample's own noise (DDIM), the UNet, and unCLIP's decoder and prior."""

import math

import pytest
import torch

from mmcourse.data.world import BACKGROUND
from mmcourse.losses.diffusion import NoiseSchedule, diffusion_loss
from mmcourse.models.unclip import Judge, Prior, UnCLIP, UnCLIPDecoder
from mmcourse.nn.unet import UNet, timestep_embedding
from mmcourse.recipes import unclip_tiny


def test_cosine_schedule_follows_its_formula():
    T, s = 50, 0.008
    sched = NoiseSchedule.cosine(T)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = torch.tensor([f[t + 1] / f[0] for t in range(T)])
    expected[-1] = sched.alpha_bar[-2] * (1 - 0.999)  # the last β is clipped at 0.999
    torch.testing.assert_close(sched.alpha_bar, expected.float(), rtol=1e-5, atol=1e-7)
    assert (sched.alpha_bar[1:] < sched.alpha_bar[:-1]).all() and sched.alpha_bar[-1] < 1e-3


def test_linear_schedule_is_ho_et_al_scaled_to_t():
    ho = NoiseSchedule.linear(1000)
    torch.testing.assert_close(ho.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    short = NoiseSchedule.linear(200)
    torch.testing.assert_close(short.betas[[0, -1]], torch.tensor([5e-4, 0.1]))
    assert short.alpha_bar[-1] < 1e-4 and ho.alpha_bar[-1] < 1e-4


def test_q_sample_is_closed_form_and_per_sample():
    sched = NoiseSchedule.cosine(100)
    x0, eps, t = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 50, 99])
    xt = sched.q_sample(x0, t, eps)
    for i in range(4):
        a = sched.alpha_bar[t[i]]
        torch.testing.assert_close(xt[i], a.sqrt() * x0[i] + (1 - a).sqrt() * eps[i])
    torch.testing.assert_close(sched.predict_x0(xt, t, eps), x0, rtol=0, atol=1e-3)  # ÷ √ᾱ_99 ≈ ÷ 0.02 in fp32
    big = sched.q_sample(torch.zeros(20000), 60, torch.randn(20000))  # one t for all
    assert abs(big.std().item() - (1 - sched.alpha_bar[60]).sqrt().item()) < 0.02


def test_ddpm_step_is_the_epsilon_form_and_adds_no_noise_at_the_last_step():
    sched = NoiseSchedule.linear(50)
    x, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    for t in (30, 1):
        a, a_bar, beta = sched.alphas[t], sched.alpha_bar[t], sched.betas[t]
        mean = (x - beta / (1 - a_bar).sqrt() * eps) / a.sqrt()
        sigma2 = beta * (1 - sched.alpha_bar[t - 1]) / (1 - a_bar)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        z = torch.randn(x.shape, generator=g2)
        torch.testing.assert_close(sched.ddpm_step(x, t, eps, g1, clip=None), mean + sigma2.sqrt() * z,
                                   rtol=1e-4, atol=1e-5)
    last = [sched.ddpm_step(x, 0, eps, torch.Generator().manual_seed(k), clip=None) for k in (1, 2)]
    torch.testing.assert_close(last[0], last[1])
    torch.testing.assert_close(last[0], (x - sched.betas[0] / (1 - sched.alpha_bar[0]).sqrt() * eps)
                               / sched.alphas[0].sqrt(), rtol=1e-4, atol=1e-5)


def test_ddim_step_with_the_true_noise_lands_on_the_forward_process():
    sched = NoiseSchedule.cosine(100)
    x0, eps = torch.rand(2, 3, 4, 4) * 1.6 - 0.8, torch.randn(2, 3, 4, 4)
    xt = sched.q_sample(x0, 80, eps)
    torch.testing.assert_close(sched.ddim_step(xt, 80, 40, eps), sched.q_sample(x0, 40, eps), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sched.ddim_step(xt, 80, -1, eps), x0, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="t_prev"):
        sched.ddim_step(xt, 80, 80, eps)


def test_timesteps_of_each_sampler():
    sched = NoiseSchedule.cosine(200)
    assert sched.timesteps() == list(range(199, -1, -1))
    ts = sched.timesteps(25)
    assert len(ts) == 25 and ts[0] == 199 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    assert sched.timesteps(1) == [199]


@pytest.mark.parametrize("t, match", [(200, r"\[0, 200\)"), (-1, r"\[0, 200\)"), (1.5, "integers")])
def test_timesteps_outside_the_chain_are_refused(t, match):
    sched = NoiseSchedule.cosine(200)
    with pytest.raises((ValueError, TypeError), match=match):
        sched.q_sample(torch.zeros(1, 3), torch.tensor([t]), torch.zeros(1, 3))


def test_bad_betas_are_refused():
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, 1.2]))


def test_diffusion_loss_is_mse():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(diffusion_loss(a, b), ((a - b) ** 2).mean())
    with pytest.raises(ValueError, match="eps_pred"):
        diffusion_loss(a, torch.randn(3, 4))


def test_unet_shapes_zero_start_and_conditioning():
    torch.manual_seed(0)
    net = UNet(16, 3, 16, (1, 2))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 7])
    assert torch.equal(net(x, t), torch.zeros(2, 3, 16, 16))  # the output convolution starts at zero
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    out = net(x, t)
    assert out.shape == (2, 3, 16, 16)
    assert not torch.allclose(net(x, t, torch.randn(2, net.emb_dim)), out)
    assert not torch.allclose(net(x, torch.tensor([4, 7])), out)
    assert timestep_embedding(t, 8).shape == (2, 8)
    with pytest.raises(ValueError, match=r"x: expected .*16, 16"):
        net(torch.randn(2, 3, 32, 32), t)
    with pytest.raises(ValueError, match="image_size"):
        UNet(18, 3, 16, (1, 2, 2))


def test_decoder_loss_drops_the_conditioning_and_samples_in_range():
    torch.manual_seed(0)
    dec = UnCLIPDecoder(8, 8, width=16, mults=(1, 2), T=20, p_uncond=1.0)
    torch.nn.init.normal_(dec.unet.conv_out.weight, std=0.1)  # past the zero start, as after a training step
    images, z = torch.rand(4, 3, 8, 8), torch.randn(4, 8)
    dec.loss(images, z).backward()
    assert dec.clip_proj.weight.grad.abs().sum() == 0  # every conditioning dropped: nothing reaches the projection
    assert dec.unet.conv_out.weight.grad.abs().sum() > 0
    dec.p_uncond = 0.0
    dec.zero_grad()
    dec.loss(images, z).backward()
    assert dec.clip_proj.weight.grad.abs().sum() > 0
    out, traj = dec.sample(z, guidance=2.0, seed=0, return_trajectory=True)
    assert out.shape == (4, 3, 8, 8) and 0 <= out.min() and out.max() <= 1 and len(traj) == 21
    assert len(dec.sample(z, steps=5, return_trajectory=True)[1]) == 6
    torch.testing.assert_close(dec.sample(z, seed=3), dec.sample(z, seed=3))
    with pytest.raises(ValueError, match="guidance"):
        dec.sample(z, guidance=-1.0)


def test_guidance_is_the_classifier_free_formula():
    torch.manual_seed(0)
    dec = UnCLIPDecoder(8, 8, width=16, mults=(1, 2), T=20)
    torch.nn.init.normal_(dec.unet.conv_out.weight, std=0.1)
    x, z, w = torch.randn(3, 3, 8, 8), torch.randn(3, 8), 2.5
    t = torch.full((3,), 7)
    cond, uncond = dec.eps(x, t, z), dec.unet(x, t, torch.zeros(3, dec.unet.emb_dim))
    torch.testing.assert_close(dec.guided_eps(x, 7, z, w), cond + w * (cond - uncond), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dec.guided_eps(x, 7, z, 0.0), cond)


def test_prior_predicts_unit_vectors_and_unclip_joins_the_two():
    prior, text = Prior(8), torch.randn(5, 8)
    z = prior(text)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))
    assert prior.loss(text, 3 * z.detach()).item() == pytest.approx(0, abs=1e-6)  # the target is normalised too
    assert prior.loss(text, -z.detach()).item() == pytest.approx(2, abs=1e-6)
    with pytest.raises(ValueError, match="embed"):
        UnCLIP(Prior(8), UnCLIPDecoder(16, 8, width=16, mults=(1, 2), T=10))
    model = UnCLIP(prior, UnCLIPDecoder(8, 8, width=16, mults=(1, 2), T=10))
    assert model.generate(torch.randn(2, 8), steps=3).shape == (2, 3, 8, 8)
    assert model.generate(torch.randn(2, 8), use_prior=False, steps=3).shape == (2, 3, 8, 8)


def test_judge_reads_colour_and_shape():
    colour, shape = Judge(8, 3, 16)(torch.rand(2, 3, 16, 16))
    assert colour.shape == (2, 8) and shape.shape == (2, 3)


def test_close_ups_and_the_judged_measures():
    data = unclip_tiny.close_ups(6, seed=1)
    assert data.full.shape == (6, 3, 32, 32) and data.crops.shape == (6, 3, 16, 16)
    torch.testing.assert_close(data.crops, data.full[:, :, 8:24, 8:24])
    assert ((data.scenes.center - 0.5).abs() <= unclip_tiny.CENTRE_SPREAD / 2).all()
    assert (data.scenes.n_objects == 1).all() and (data.scenes.size[:, 0] == 1).all()
    background = torch.tensor(BACKGROUND)[:, None, None].expand(3, 4, 4)
    red, pink = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.9, 0.3, 0.6])
    images = background.repeat(4, 1, 1, 1).clone()
    for i, colour in enumerate([red, red, red, pink]):  # prompts 0 and 1 interleaved: (red, red), (red, pink)
        images[i, :, 1:3, 1:3] = colour[:, None, None]
    torch.testing.assert_close(unclip_tiny.object_colour(images), torch.stack([red, red, red, pink]))
    spread = torch.stack([red, pink]).std(0).mean().item() / 2  # prompt 0 has none, prompt 1 this
    assert unclip_tiny.diversity(images, 2) == pytest.approx(spread)
    with pytest.raises(ValueError, match="2 samples"):
        unclip_tiny.diversity(images, 4)


class _FixedJudge(torch.nn.Module):
    def __init__(self, colour, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.colour, self.shape = colour, shape

    def forward(self, images):
        return torch.nn.functional.one_hot(self.colour, 8).float(), torch.nn.functional.one_hot(self.shape, 3).float()


def test_judge_accuracy_counts_colour_shape_and_both():
    labels = torch.tensor([0, 4, 23, 5])  # (colour, shape) = (0, 0), (1, 1), (7, 2), (1, 2)
    judge = _FixedJudge(torch.tensor([0, 1, 6, 1]), torch.tensor([0, 2, 2, 2]))
    acc = unclip_tiny.judge_accuracy(judge, torch.zeros(4, 3, 16, 16), labels)
    assert acc == {"colour": 0.75, "shape": 0.75, "both": 0.5}


def test_noise_like_draws_from_the_generator_on_its_own_device():
    from mmcourse.losses.diffusion import noise_like

    x = torch.zeros(2, 3, dtype=torch.float64)
    z = noise_like(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(z, torch.randn(2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    assert z.dtype == torch.float64 and noise_like(x).shape == (2, 3)
