import math

import pytest
import torch

from mmcourse.train import fit, to_device, warmup_cosine


def _regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return x, y


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x).squeeze(-1), y)


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    x, y = _regression()
    model = torch.nn.Linear(4, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=False)
    evals = lambda m: {"mse": _loss(m, (x, y)).item()}
    h = fit(model, _loss, loader, steps=300, lr=0.05, warmup=10, eval_fn=evals, eval_every=100, device="cpu",
            progress=False)
    assert len(h.loss) == 300
    assert [e["step"] for e in h.evals] == [100, 200, 300]
    assert h.evals[-1]["mse"] < 0.01
    assert h.loss[-1] < h.loss[0] / 50
    assert not model.training


def test_fit_is_deterministic_given_a_seed():
    x, y = _regression()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = torch.nn.Linear(4, 1)
        fit(model, _loss, lambda step: (x[step % 8 * 32:][:32], y[step % 8 * 32:][:32]), steps=20, device="cpu",
            progress=False)
        runs.append(model.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_stop_when_ends_early():
    x, y = _regression()
    model = torch.nn.Linear(4, 1)
    h = fit(model, _loss, lambda s: (x, y), steps=1000, lr=0.1, eval_fn=lambda m: {"mse": _loss(m, (x, y)).item()},
            eval_every=10, stop_when=lambda m: m["mse"] < 0.5, device="cpu", progress=False)
    assert len(h.loss) < 1000 and h.evals[-1]["mse"] < 0.5


def test_after_step_runs_every_step():
    x, y = _regression()
    calls = []
    fit(torch.nn.Linear(4, 1), _loss, lambda s: (x, y), steps=7, after_step=lambda m: calls.append(1),
        device="cpu", progress=False)
    assert len(calls) == 7


def test_bad_input_is_a_clear_error():
    x, y = _regression()
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        fit(torch.nn.Linear(4, 1), _loss, lambda s: (x, y), steps=0, progress=False)
    frozen = torch.nn.Linear(4, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, _loss, lambda s: (x, y), steps=1, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        fit(torch.nn.Linear(4, 1), _loss, [], steps=1, device="cpu", progress=False)
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(torch.nn.Linear(4, 1), lambda m, b: m(b).sum() * math.inf, lambda s: x, steps=1, device="cpu",
            progress=False)


@pytest.mark.parametrize("kw, error, message", [
    (dict(grad_clip=-1.0), ValueError, "grad_clip: expected a number > 0, got -1.0"),  # would climb the loss
    (dict(grad_clip=0.0), ValueError, "grad_clip: expected a number > 0, got 0.0"),  # would stop all learning
    (dict(lr=0.0), ValueError, "lr: expected a number > 0"),
    (dict(lr=math.nan), ValueError, "lr: expected a finite number"),
    (dict(warmup=-3), ValueError, "warmup: expected an int >= 0"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay: expected a number >= 0"),
    (dict(steps=2.0), TypeError, "steps: expected an int, got float 2.0"),
    (dict(steps=True), TypeError, "steps: expected an int, got bool"),
])
def test_arguments_that_would_train_wrongly_are_refused(kw, error, message):
    x, y = _regression()
    with pytest.raises(error, match=message):
        fit(torch.nn.Linear(4, 1), _loss, lambda s: (x, y), **{"steps": 1, **kw}, device="cpu", progress=False)


def test_a_loss_that_cannot_train_is_refused():
    x, y = _regression()
    with pytest.raises(ValueError, match="scalar tensor .* got Tensor\\(shape=\\(256,\\)"):
        fit(torch.nn.Linear(4, 1), lambda m, b: (m(b[0]).squeeze(-1) - b[1]) ** 2, lambda s: (x, y), steps=1,
            device="cpu", progress=False)
    with pytest.raises(ValueError, match="without a gradient"):
        fit(torch.nn.Linear(4, 1), lambda m, b: _loss(m, b).detach(), lambda s: (x, y), steps=1, device="cpu",
            progress=False)
    with pytest.raises(ValueError, match="got float"):
        fit(torch.nn.Linear(4, 1), lambda m, b: _loss(m, b).item(), lambda s: (x, y), steps=1, device="cpu",
            progress=False)


def test_a_one_shot_iterator_that_runs_out_says_so():
    x, y = _regression()
    with pytest.raises(ValueError, match="ran out after 2 batches and cannot be iterated again"):
        fit(torch.nn.Linear(4, 1), _loss, iter([(x, y), (x, y)]), steps=3, device="cpu", progress=False)
    h = fit(torch.nn.Linear(4, 1), _loss, [(x, y), (x, y)], steps=3, device="cpu", progress=False)  # a list cycles
    assert len(h.loss) == 3


def test_warmup_cosine_shape():
    values = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(values[10:], values[11:])) and values[-1] < 0.001


def test_to_device_walks_nested_batches():
    batch = {"a": torch.zeros(2), "b": [torch.ones(1), (torch.ones(1), "text")], "n": 3}
    out = to_device(batch, torch.device("cpu"))
    assert out["n"] == 3 and out["b"][1][1] == "text" and torch.equal(out["b"][0], torch.ones(1))


def test_weight_decay_spares_gains_biases_and_the_logit_scale():
    from mmcourse.models.clip import CLIP, CLIPConfig
    from mmcourse.train import param_groups

    model = CLIP(CLIPConfig.tiny(vocab_size=30, eot_id=2, context_length=8))
    decay, rest = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for p in rest["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "logit_scale" in spared and "visual.class_embedding" in spared
    assert any(n.endswith("ln_final.weight") for n in spared) and any(n.endswith(".bias") for n in spared)
    assert "text.text_projection" in decayed and "text.token_embedding.weight" in decayed
    assert all(".bias" not in n and "ln" not in n.split(".")[-2] for n in decayed)
    assert len(spared) + len(decayed) == len(names)
    # fit uses these groups: a weight decay step leaves the logit scale where the gradient alone puts it
    scale = torch.nn.Parameter(torch.tensor(4.0))
    holder = torch.nn.Module()
    holder.scale = scale
    fit(holder, lambda m, b: 0 * m.scale, lambda s: None, 3, lr=0.1, weight_decay=1.0, progress=False)
    assert scale.item() == 4.0
