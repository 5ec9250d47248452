import pytest
import torch

from mmcourse.nn.fusion import (
    ConcatFusion,
    CrossAttentionFusion,
    EarlyFusion,
    LateFusion,
    MultimodalTransformerFusion,
    TensorFusion,
    modality_dropout,
)


def tokens(B=4, La=5, Lb=3, Da=6, Db=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, La, Da, generator=g), torch.randn(B, Lb, Db, generator=g)


@pytest.mark.parametrize("block", [ConcatFusion(6, 8, 16), TensorFusion(6, 8, 16), CrossAttentionFusion(6, 8, 16),
                                   MultimodalTransformerFusion(6, 8, 16)])
def test_every_block_maps_two_token_sets_to_one_vector_and_checks_the_batch(block):
    a, b = tokens()
    assert block(a, b).shape == (4, 16)
    with pytest.raises(ValueError, match="b: expected shape"):
        block(a, b[:3])
    with pytest.raises(ValueError, match="expected shape"):
        block(a[..., :5], b)


def test_tensor_fusion_feeds_the_outer_product_with_the_unimodal_terms_kept():
    torch.manual_seed(0)
    block = TensorFusion(6, 8, 16, rank=3)
    a, b = tokens()
    seen = {}
    block.mlp.register_forward_pre_hook(lambda m, x: seen.setdefault("z", x[0]))
    block(a, b)
    za, zb = block.proj_a(a.mean(1)), block.proj_b(b.mean(1))
    z = seen["z"].view(4, 4, 4)
    torch.testing.assert_close(z[:, :3, :3], za[:, :, None] * zb[:, None, :])
    torch.testing.assert_close(z[:, :3, 3], za)  # [z_a; 1] ⊗ [z_b; 1]: the last column is z_a itself
    torch.testing.assert_close(z[:, 3, :3], zb)
    torch.testing.assert_close(z[:, 3, 3], torch.ones(4))


def test_cross_attention_weights_are_distributions_over_b_and_order_of_b_does_not_matter():
    torch.manual_seed(0)
    block = CrossAttentionFusion(6, 8, 16).eval()
    a, b = tokens()
    out, w = block(a, b, return_weights=True)
    assert w.shape == (4, 4, 5, 3)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, 4, 5))
    torch.testing.assert_close(block(a, b.flip(1)), out, atol=1e-5, rtol=1e-5)  # keys are a set


def test_multimodal_transformer_tells_the_modalities_apart_by_their_embeddings():
    torch.manual_seed(0)
    block = MultimodalTransformerFusion(8, 8, 16).eval()
    a, b = tokens(Da=8)
    block.proj_b.load_state_dict(block.proj_a.state_dict())  # one projection: only e_a != e_b tells a from b
    assert not torch.allclose(block(a, b), block(b, a), atol=1e-4)
    with torch.no_grad():
        block.modality_embed.weight[1] = block.modality_embed.weight[0]
    torch.testing.assert_close(block(a, b), block(b, a), atol=1e-5, rtol=1e-5)


def test_late_fusion_averages_logits_and_leaves_a_missing_modality_out():
    late = LateFusion(2)
    x, y = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(late([x, y]), (x + y) / 2)
    torch.testing.assert_close(late([None, y]), y)
    with torch.no_grad():
        late.scores[0] = 1.0
    w = torch.tensor([1.0, 0.0]).softmax(0)
    torch.testing.assert_close(late([x, y]), w[0] * x + w[1] * y)
    with pytest.raises(ValueError, match="every modality is missing"):
        late([None, None])
    with pytest.raises(ValueError, match="expected 2 logit tensors"):
        late([x])


def test_early_fusion_names_the_feature_counts_it_expected():
    early = EarlyFusion(12, 6, 16)
    assert early(torch.randn(2, 3, 4), torch.randn(2, 6)).shape == (2, 16)
    with pytest.raises(ValueError, match="expected 12 \\+ 6 input features"):
        early(torch.randn(2, 3, 5), torch.randn(2, 6))


def test_modality_dropout_zeroes_one_whole_stream_never_both_and_copies():
    a, b = torch.ones(2000, 3, 4), torch.ones(2000, 5)
    a0, b0 = modality_dropout(a, b, 0.0)
    assert torch.equal(a0, a) and torch.equal(b0, b)
    da, db = modality_dropout(a, b, 0.4, torch.Generator().manual_seed(0))
    gone_a, gone_b = (da == 0).flatten(1).all(1), (db == 0).all(1)
    assert ((da == 0).flatten(1).any(1) == gone_a).all()  # whole streams, not single values
    assert not (gone_a & gone_b).any()
    assert abs((gone_a | gone_b).float().mean() - 0.4) < 0.04
    assert abs(gone_a.float().mean() - gone_b.float().mean()) < 0.05
    assert (a == 1).all() and (b == 1).all()
    da, db = modality_dropout(a, b, 1.0)
    assert ((da == 0).flatten(1).all(1) ^ (db == 0).all(1)).all()
    with pytest.raises(ValueError, match="p"):
        modality_dropout(a, b, 1.5)
    with pytest.raises(ValueError, match="same batch size"):
        modality_dropout(a, b[:3], 0.5)


def _matching_task(n, seed):
    """a and b each one token, a one-hot of 4 things; the label is whether they are the same thing (balanced)."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(4, (n,), generator=g)
    same = torch.rand(n, generator=g) < 0.5
    j = torch.where(same, i, (i + torch.randint(1, 4, (n,), generator=g)) % 4)
    eye = torch.eye(4)
    return eye[i][:, None], eye[j][:, None], same.long()


def _fit(logits_fn, params, a, b, y, steps=150):
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(logits_fn(a, b), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_late_fusion_cannot_learn_a_match_that_tensor_fusion_learns():
    torch.manual_seed(0)
    a, b, y = _matching_task(512, 0)
    ta, tb, ty = _matching_task(512, 1)
    heads = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.GELU(), torch.nn.Linear(32, 2))
                                 for _ in range(2)])
    late = LateFusion(2)
    late_fn = lambda a, b: late([heads[0](a.mean(1)), heads[1](b.mean(1))])  # noqa: E731
    _fit(late_fn, [*heads.parameters(), *late.parameters()], a, b, y)
    tensor, head = TensorFusion(4, 4, 32, rank=4), torch.nn.Linear(32, 2)
    tensor_fn = lambda a, b: head(tensor(a, b))  # noqa: E731
    _fit(tensor_fn, [*tensor.parameters(), *head.parameters()], a, b, y)
    with torch.no_grad():
        late_acc = (late_fn(ta, tb).argmax(1) == ty).float().mean()
        tensor_acc = (tensor_fn(ta, tb).argmax(1) == ty).float().mean()
    assert late_acc < 0.65, late_acc  # f(a) + g(b) cannot say "same"
    assert tensor_acc > 0.95, tensor_acc
