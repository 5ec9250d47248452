"""LLaVA: the splice of image features into the token embeddings, the frozen tower, cached generation."""

import pytest
import torch

from mmcourse.losses.lm import lm_loss
from mmcourse.models.llava import PROJECTORS, LLaVA, PatchMerger, splice
from mmcourse.nn import TextDecoder, VisionTransformer

IMG, PAD, EOT, SOT, V = -200, 0, 2, 1, 20


def lm(seed=0, context_length=40):
    torch.manual_seed(seed)
    return TextDecoder(V, context_length, 16, 2, 2, eot_id=EOT, pad_id=PAD, sot_id=SOT)


def vision(seed=0):
    torch.manual_seed(seed)
    return VisionTransformer(8, 4, width=12, layers=2, heads=2)  # 4 patches


def llava(projector="mlp2x_gelu", **kw):
    m = LLaVA(vision(), lm(**kw), image_token_index=IMG, projector=projector)
    torch.manual_seed(1)
    for p in m.projector.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m


def rows():
    """Right-padded ids with 1, 0, 2 and 1 placeholders, labels on some tokens."""
    data = [[SOT, 5, IMG, 6, 7, EOT], [SOT, 8, 9], [SOT, IMG, 5, IMG, 6], [SOT, IMG, 10, 11, 12, 13, EOT]]
    L = max(map(len, data))
    ids = torch.tensor([r + [PAD] * (L - len(r)) for r in data])
    labels = torch.where((ids > 6) & (ids != IMG), ids, -100)
    return ids, labels


def splice_by_loop(ids, image_embeds, embed, labels):
    """The splice as LLaVA's prepare_inputs_labels_for_multimodal writes it: row by row, placeholder by
    placeholder, then right-padding to the longest row."""
    out, out_labels, k = [], [], 0
    for row, lab in zip(ids, labels, strict=True):
        row, lab = row[row != PAD], lab[row != PAD]
        pieces, piece_labels, start = [], [], 0
        for j in (row == IMG).nonzero().flatten().tolist() + [len(row)]:
            pieces.append(embed(row[None, start:j])[0])
            piece_labels.append(lab[start:j])
            if j < len(row):
                pieces.append(image_embeds[k])
                piece_labels.append(torch.full((len(image_embeds[k]),), -100))
                k += 1
            start = j + 1
        out.append(torch.cat(pieces))
        out_labels.append(torch.cat(piece_labels))
    T = max(len(x) for x in out)
    embeds = torch.stack([torch.nn.functional.pad(x, (0, 0, 0, T - len(x))) for x in out])
    labels = torch.stack([torch.nn.functional.pad(x, (0, T - len(x)), value=-100) for x in out_labels])
    lengths = torch.tensor([len(x) for x in out])
    return embeds, labels, torch.arange(T)[None] >= lengths[:, None]


def test_splice_equals_the_row_by_row_reference():
    ids, labels = rows()
    decoder = lm()
    images = torch.randn(4, 3, 16)
    s = splice(ids, images, decoder.embed, labels, image_token_index=IMG, pad_id=PAD)
    embeds, ref_labels, padding = splice_by_loop(ids, images, decoder.embed, labels)
    torch.testing.assert_close(s.embeds, embeds)
    assert torch.equal(s.labels, ref_labels) and torch.equal(s.padding_mask, padding)
    assert s.image_mask.sum() == 4 * 3 and (s.labels[s.image_mask] == -100).all()
    assert s.embeds.shape[1] == 3 + 2 * 3  # row 2: 3 tokens and two images of 3 features (row 3: 6 + 3)
    assert (s.embeds[s.padding_mask] == 0).all()


def test_splice_passes_gradients_to_images_and_token_embeddings():
    ids, labels = rows()
    decoder = lm()
    images = torch.randn(4, 3, 16, requires_grad=True)
    splice(ids, images, decoder.embed, labels, image_token_index=IMG, pad_id=PAD).embeds.sum().backward()
    assert images.grad is not None and (images.grad == 1).all()
    assert decoder.token_embedding.weight.grad[5].abs().sum() > 0


@pytest.mark.parametrize("images, message", [(3, "4 image placeholders .* but 3 images"),
                                             (5, "4 image placeholders .* but 5 images")])
def test_splice_needs_one_image_per_placeholder(images, message):
    ids, labels = rows()
    with pytest.raises(ValueError, match=message):
        splice(ids, torch.randn(images, 3, 16), lm().embed, labels, image_token_index=IMG, pad_id=PAD)


def test_splice_refuses_left_padding():
    ids = torch.tensor([[PAD, SOT, IMG, 5], [SOT, IMG, 6, 7]])
    with pytest.raises(ValueError, match="right-padded"):
        splice(ids, torch.randn(2, 3, 16), lm().embed, image_token_index=IMG, pad_id=PAD)


def test_image_features_are_the_penultimate_patch_tokens_and_the_tower_stays_frozen():
    m = llava()
    images = torch.rand(2, 3, 8, 8)
    hidden = m.vision_tower.transformer(m.vision_tower.embed(images), return_hidden=True).hidden_states
    torch.testing.assert_close(m.image_features(images), hidden[-2][:, 1:])
    assert m.image_features(images).shape == (2, 4, 12)
    m.train()
    assert not m.vision_tower.training and m.language_model.training
    assert not any(p.requires_grad for p in m.vision_tower.parameters())


@pytest.mark.parametrize("projector", PROJECTORS)
def test_loss_is_the_language_models_loss_on_the_spliced_labels(projector):
    m = llava(projector)
    ids, labels = rows()
    features = torch.randn(4, 4, 12)
    out = m(ids, labels, features=features)
    torch.testing.assert_close(out.loss, lm_loss(m.language_model(embeds=out.spliced.embeds), out.spliced.labels))
    out.loss.backward()
    assert all(p.grad is not None for p in m.projector.parameters())


def test_patch_merger_concatenates_each_2x2_block_of_the_grid_before_its_mlp():
    torch.manual_seed(0)
    merger = PatchMerger(3, 5)
    features = torch.randn(2, 16, 3)  # a 4 x 4 grid, row by row
    grid = features.view(2, 4, 4, 3)
    blocks = [torch.cat([grid[:, 2 * r, 2 * c], grid[:, 2 * r, 2 * c + 1], grid[:, 2 * r + 1, 2 * c],
                         grid[:, 2 * r + 1, 2 * c + 1]], -1) for r in range(2) for c in range(2)]
    torch.testing.assert_close(merger(features), merger.mlp(torch.stack(blocks, 1)))
    for n in (8, 9):  # not a square; a square of odd side
        with pytest.raises(ValueError, match=f"square grid of even side, got {n} patches"):
            merger(torch.randn(1, n, 3))


def test_a_rows_logits_do_not_depend_on_the_rows_batched_with_it():
    m = llava().eval()
    ids, labels = rows()
    features = torch.randn(4, 4, 12)
    batched = m(ids, labels, features=features)
    alone = m(ids[3:, :7], labels[3:, :7], features=features[3:])
    T = alone.logits.shape[1]
    torch.testing.assert_close(batched.logits[3, :T], alone.logits[0], atol=1e-5, rtol=1e-5)


def test_images_or_features_give_the_same_output():
    m = llava().eval()
    ids, _ = rows()
    images = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(m(ids, images=images).logits, m(ids, features=m.image_features(images)).logits)
    with pytest.raises(ValueError, match="exactly one of images"):
        m(ids)


def test_cached_generation_equals_uncached_and_batched_equals_one_by_one():
    m = llava().eval()
    ids = torch.tensor([[SOT, 5, IMG, 6, 7], [SOT, IMG, 8, PAD, PAD]])
    features = torch.randn(2, 4, 12)
    cached = m.generate(ids, features=features, max_new_tokens=6)
    uncached = m.generate(ids, features=features, max_new_tokens=6, use_cache=False)
    assert torch.equal(cached.ids, uncached.ids)
    alone = m.generate(ids[1:, :3], features=features[1:], max_new_tokens=6)
    assert torch.equal(alone.ids[0, :int(alone.lengths[0])], cached.ids[1, :int(cached.lengths[1])])


def test_clear_errors():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        LLaVA(vision(), lm(), image_token_index=3)
    with pytest.raises(ValueError, match="projector: expected one of"):
        LLaVA(vision(), lm(), image_token_index=IMG, projector="mlp")
    m = llava(context_length=10)
    ids, labels = rows()
    with pytest.raises(ValueError, match="more than context_length=10"):
        m(ids, labels, features=torch.randn(4, 4, 12))
    with pytest.raises(ValueError, match="features"):
        m(ids, labels, features=torch.randn(4, 4, 10))
