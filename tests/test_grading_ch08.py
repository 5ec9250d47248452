"""Chapter 08's checks: gradients are compared, not only values; a correct answer written differently passes; the
mistakes that only gradients reveal are reported by the gradient, not named after another mistake; the experiment
says what it measured against which bar, and refuses a codebook over the cap before training."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch08


def test_quantize_written_with_cdist_and_embedding_passes(capsys):
    def quantize(z, codebook, beta):
        codes = torch.cdist(z, codebook).argmin(1)
        e = F.embedding(codes, codebook)
        loss = (e - z.detach()).pow(2).mean() + beta * (z - e.detach()).pow(2).mean()
        return e.detach() + z - z.detach(), codes, loss  # the value of e, the gradient of z

    check("08.quantize", quantize)
    assert capsys.readouterr().out.startswith("✓ 08.quantize")


def test_quantize_catches_a_codebook_without_gradient_even_when_the_loss_value_is_right():
    def quantize(z, codebook, beta):  # (1 + β) · mse(z, sg e): the right number, nothing reaches the codebook
        codes = torch.cdist(z, codebook).argmin(1)
        e = codebook[codes]
        return z + (e - z).detach(), codes, (1 + beta) * F.mse_loss(z, e.detach())

    with pytest.raises(CheckFailed, match="the loss's gradient on the codebook") as err:
        check("08.quantize", quantize)
    assert "got:      0" in str(err.value)
    assert "known mistake" not in str(err.value)  # the values match the reference's: no mistake is named from them


def test_quantize_catches_the_decoders_gradient_leaking_into_the_codebook():
    def quantize(z, codebook, beta):  # e + (z − sg z): the value of e, the gradient of z, and of the codebook too
        codes = torch.cdist(z, codebook).argmin(1)
        e = codebook[codes]
        return e + (z - z.detach()), codes, F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())

    with pytest.raises(CheckFailed, match="the gradient reaching the codebook through quantized"):
        check("08.quantize", quantize)


def test_quantize_without_straight_through_is_reported_by_the_gradient():
    def quantize(z, codebook, beta):
        codes = torch.cdist(z, codebook).argmin(1)
        e = codebook[codes]
        return e, codes, F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())

    with pytest.raises(CheckFailed, match="the gradient reaching z through quantized") as err:
        check("08.quantize", quantize)
    assert "straight-through" in str(err.value) and "known mistake" not in str(err.value)


def test_quantize_with_a_detached_output_says_no_gradient_flows():
    def quantize(z, codebook, beta):
        q, codes, loss = ch08.quantize(z, codebook, beta)
        return q.detach(), codes, loss

    with pytest.raises(CheckFailed, match="quantized: no gradient flows through it"):
        check("08.quantize", quantize)


def test_the_cases_have_no_near_ties():
    g = torch.Generator().manual_seed(0)
    codebook = ch08._codebook(5, 3, g)
    midpoint = (codebook[0] + codebook[1]) / 2  # as near to code 0 as to code 1, unless another code is nearer
    codebook[2:] += 100
    z = torch.cat([torch.randn(200, 3, generator=g), midpoint[None], midpoint[None] + 1e-6])
    keep = ch08._clear_of_ties(z, codebook)
    assert not keep[-2:].any() and keep.sum() > 150
    d = torch.cdist(z[keep], codebook).pow(2).sort(1).values
    assert (d[:, 1] - d[:, 0]).min() > 1e-3


def test_the_study_guide_layer_as_given_is_named():
    def vq_layer(z, codebook, beta):  # as given
        B, D = z.shape[:2]
        flat = z.view(-1, D)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
        codes = d.argmin(1)
        e = codebook[codes]
        loss = F.mse_loss(flat, e.detach())
        quantized = flat + (e - flat).detach()
        return quantized.view(z.shape), codes.view(B, *z.shape[2:]), loss

    with pytest.raises(CheckFailed, match="known mistake: the study guide's layer as given") as err:
        check("08.vq_layer", vq_layer)
    assert "movedim" in str(err.value)  # the hint says how to flatten


def test_a_layer_with_only_the_flattening_fixed_is_named_after_its_loss():
    def vq_layer(z, codebook, beta):
        z_last = z.permute(0, 2, 3, 4, 1)
        flat = z_last.reshape(-1, z.shape[1])
        codes = torch.cdist(flat, codebook).argmin(1)
        e = codebook[codes].view(z_last.shape)
        quantized = (z_last + (e - z_last).detach()).permute(0, 4, 1, 2, 3)
        return quantized, codes.view(z_last.shape[:-1]), F.mse_loss(z_last, e.detach())

    with pytest.raises(CheckFailed, match="known mistake: keeps only the detached-target term"):
        check("08.vq_layer", vq_layer)


def test_a_layer_written_with_permute_and_einsum_passes(capsys):
    def vq_layer(z, codebook, beta):
        B, D, T, H, W = z.shape
        flat = z.permute(0, 2, 3, 4, 1).reshape(-1, D)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * torch.einsum("nd,kd->nk", flat, codebook) \
            + codebook.pow(2).sum(1)
        codes = d.argmin(1)
        e = codebook[codes]
        loss = F.mse_loss(e, flat.detach()) + beta * F.mse_loss(flat, e.detach())
        quantized = (flat + (e - flat).detach()).view(B, T, H, W, D).permute(0, 4, 1, 2, 3)
        return quantized, codes.view(B, T, H, W), loss

    check("08.vq_layer", vq_layer)
    assert capsys.readouterr().out.startswith("✓ 08.vq_layer")


def test_the_experiment_failure_names_the_perplexity_reached_and_the_bar():
    with pytest.raises(CheckFailed) as err:
        check("08.reset_settings", lambda: {"num_codes": 64, "beta": 0.25, "reset_threshold": None})
    message = str(err.value)
    assert "reset_threshold None: the held-out points' codes have perplexity" in message
    assert "expected: perplexity ≥ 40" in message and "of 64 codes used" in message
    assert "without a reset" in message


def test_a_codebook_smaller_than_the_bar_is_told_so():
    with pytest.raises(CheckFailed, match="the perplexity of 32 codes is at most 32"):
        check("08.reset_settings", lambda: {"num_codes": 32, "beta": 0.25, "reset_threshold": 0.5})


def test_a_codebook_over_the_cap_is_refused_before_any_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained a codebook over the cap")

    monkeypatch.setattr(ch08, "run_reset", no_training)
    with pytest.raises(CheckFailed, match=r"num_codes 100 is over the cap\n  expected: num_codes ≤ 64"):
        check("08.reset_settings", lambda: {"num_codes": 100, "beta": 0.25, "reset_threshold": 0.1})


@pytest.mark.parametrize("settings, message", [
    ({"num_codes": 64, "beta": 0.25}, "must return the three settings"),
    ([64, 0.25, 0.1], "must return the three settings"),
    ({"num_codes": 64.0, "beta": 0.25, "reset_threshold": 0.1}, "num_codes must be the number of codes"),
    ({"num_codes": True, "beta": 0.25, "reset_threshold": 0.1}, "num_codes must be the number of codes"),
    ({"num_codes": 64, "beta": -1, "reset_threshold": 0.1}, "beta must be the commitment weight"),
    ({"num_codes": 64, "beta": 0.25, "reset_threshold": 2.0}, "reset_threshold must be None"),
])
def test_malformed_settings_are_clear_failures(settings, message, monkeypatch):
    monkeypatch.setattr(ch08, "run_reset", lambda *a, **k: pytest.fail("trained on malformed settings"))
    with pytest.raises(CheckFailed, match=message):
        check("08.reset_settings", lambda: settings)


def test_the_experiment_separates_reset_from_no_reset_and_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    collapsed = ch08.run_reset(64, 0.25, None)
    assert torch.equal(torch.get_rng_state(), state)
    assert collapsed["perplexity"] < 10 and collapsed["codes used"] < 10  # a few codes take every cluster
    assert ch08.run_reset(512, 0.25, None)["perplexity"] < 10  # more codes do not help without a reset
    for threshold in (0.1, 0.5):
        assert ch08.run_reset(64, 0.25, threshold)["perplexity"] >= ch08.EXPERIMENT["bar"] + 5  # a margin
    assert ch08.run_reset(64, 0.25, 0.1) == ch08.run_reset(64, 3.0, 0.1)  # no encoder: beta changes nothing
