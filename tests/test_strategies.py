"""OGM-GE: the coefficients of the paper's formula, and gradients scaled on the leading stream's branch only."""

import math

import pytest
import torch
from torch import nn

from mmcourse.strategies import OGMGE, ogm_coefficients
from mmcourse.train import fit


def test_coefficients_follow_the_formula_for_the_leading_stream():
    labels = torch.tensor([0, 1])
    sure = torch.tensor([[9.0, -9.0], [-9.0, 9.0]])  # softmax score ~1 per example: s = 2
    unsure = torch.zeros(2, 2)  # 0.5 per example: s = 1
    k = ogm_coefficients({"image": unsure, "sound": sure}, labels, alpha=1.0)
    assert k["image"] == 1.0
    assert k["sound"] == pytest.approx(1 - math.tanh(1.0 * (2.0 - 1)), abs=1e-3)
    assert ogm_coefficients({"image": sure, "sound": unsure}, labels, 1.0)["image"] == pytest.approx(k["sound"])
    assert ogm_coefficients({"a": unsure, "b": unsure}, labels, 5.0) == {"a": 1.0, "b": 1.0}
    assert ogm_coefficients({"image": unsure, "sound": sure}, labels, 0.0)["sound"] == 1.0  # alpha 0: off
    with pytest.raises(ValueError, match="two streams"):
        ogm_coefficients({"image": sure}, labels, 1.0)


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image, self.sound = nn.Linear(3, 2), nn.Linear(3, 2)


def test_the_leading_branch_alone_is_scaled_between_backward_and_step():
    model, x, y = Two(), torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        model.sound.weight.copy_(torch.tensor([[5.0, 0, 0], [-5.0, 0, 0]]))
        x[:, 0] = torch.tensor([1.0, -1, 1, -1])  # the sound stream is right and sure

    def grads(ogm):
        model.zero_grad()
        logits = {"image": model.image(x), "sound": model.sound(x)}
        if ogm is not None:
            ogm.observe(logits, y)
        nn.functional.cross_entropy(logits["image"] + logits["sound"], y).backward()
        if ogm is not None:
            ogm(model)
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, ogm = grads(None), OGMGE(alpha=1.0, noise=False)
    modulated = grads(ogm)
    k = ogm.history[-1]
    assert k["image"] == 1.0 and 0 < k["sound"] < 1
    for name in plain:
        factor = k["sound"] if name.startswith("sound") else 1.0
        assert torch.allclose(modulated[name], factor * plain[name])
    noisy = grads(OGMGE(alpha=1.0, noise=True, seed=1))
    assert torch.equal(noisy["image.weight"], plain["image.weight"])
    assert not torch.allclose(noisy["sound.weight"], k["sound"] * plain["sound.weight"])
    with pytest.raises(RuntimeError, match="observe"):
        ogm(model)
    ogm.observe({"image": model.image(x), "vision": model.sound(x)}, y)
    with pytest.raises(AttributeError, match="no submodule 'vision'"):
        ogm(model)


def test_fit_runs_before_step_after_backward_and_before_the_optimiser():
    model, seen = nn.Linear(2, 1), []

    def before(m):
        seen.append((m.weight.grad is not None, m.weight.detach().clone()))

    fit(model, lambda m, b: m(b).pow(2).mean(), lambda step: torch.ones(4, 2), 3, lr=0.1, before_step=before,
        progress=False)
    assert len(seen) == 3 and all(has_grad for has_grad, _ in seen)
    assert not torch.equal(seen[0][1], seen[1][1])  # the optimiser stepped between two calls
