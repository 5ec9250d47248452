"""`TextDecoder.add_tokens` (grow the vocabulary for a fine-tuning's new words) and `chat_tokenizer(new_words)`,
the tokenizer side of the same growth."""

import pytest
import torch

from mmcourse.data.chat import ROLES, chat_tokenizer
from mmcourse.nn import TextDecoder

V, N = 10, 3


def make(seed=0, **kw):
    torch.manual_seed(seed)
    decoder = TextDecoder(vocab_size=V, context_length=16, width=8, layers=1, heads=2, eot_id=2, pad_id=0, **kw)
    with torch.no_grad():  # random rows everywhere, so that "unchanged" and "the mean" mean something
        decoder.token_embedding.weight.normal_()
        decoder.lm_head.weight.normal_()
    return decoder.eval()


def ids(seed=1, B=2, L=6):
    return torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(seed))


def test_tied_decoder_grows_with_new_rows_at_the_mean():
    decoder = make()
    old = decoder.token_embedding.weight.detach().clone()
    x = ids()
    before = decoder(x)
    decoder.add_tokens(N)
    w = decoder.token_embedding.weight
    assert decoder.vocab_size == V + N and w.shape == (V + N, 8) and decoder.token_embedding.num_embeddings == V + N
    assert torch.equal(w[:V].detach(), old)
    torch.testing.assert_close(w[V:].detach(), old.mean(0, keepdim=True).expand(N, -1))
    assert decoder.lm_head.weight is w and decoder.lm_head.out_features == V + N
    after = decoder(x)
    assert after.shape == (*x.shape, V + N)
    assert torch.equal(after[..., :V], before)
    assert torch.allclose(after[..., V:], after[..., V:V + 1].expand_as(after[..., V:]))  # the new rows are equal
    assert decoder.eot_id == 2 and decoder.pad_id == 0


def test_untied_head_grows_the_same_way_and_stays_untied():
    decoder = make(tie_embeddings=False)
    assert decoder.lm_head.weight is not decoder.token_embedding.weight
    emb, head = decoder.token_embedding.weight.detach().clone(), decoder.lm_head.weight.detach().clone()
    x = ids(2)
    before = decoder(x)
    decoder.add_tokens(N)
    assert decoder.lm_head.weight is not decoder.token_embedding.weight
    e, h = decoder.token_embedding.weight.detach(), decoder.lm_head.weight.detach()
    assert e.shape == h.shape == (V + N, 8)
    assert torch.equal(e[:V], emb) and torch.equal(h[:V], head)
    torch.testing.assert_close(e[V:], emb.mean(0, keepdim=True).expand(N, -1))
    torch.testing.assert_close(h[V:], head.mean(0, keepdim=True).expand(N, -1))
    assert not torch.allclose(h[V:], e[V:])  # each grown from its own rows
    assert torch.equal(decoder(x)[..., :V], before)


def test_growing_twice_appends_again():
    decoder = make()
    decoder.add_tokens(1)
    decoder.add_tokens(2)
    assert decoder.vocab_size == V + 3 and decoder.token_embedding.weight.shape[0] == V + 3
    assert decoder.lm_head.weight is decoder.token_embedding.weight


@pytest.mark.parametrize("tie", [True, False])
def test_generation_reads_and_writes_new_ids(tie):
    decoder = make(tie_embeddings=tie)
    decoder.add_tokens(N)
    with pytest.raises(ValueError, match="token ids"):
        decoder(torch.tensor([[V + N]]))
    assert decoder(torch.tensor([[V, V + N - 1, 1]])).shape == (1, 3, V + N)  # new ids are valid inputs
    with torch.no_grad():  # make the last new id the argmax everywhere: the head's output is ones
        decoder.ln_final.weight.zero_()
        decoder.ln_final.bias.fill_(1.0)
        decoder.lm_head.weight[V + N - 1] = 10.0
    out = decoder.generate(ids(3), max_new_tokens=4)
    assert out.ids.shape == (2, 4) and (out.ids == V + N - 1).all() and out.lengths.tolist() == [4, 4]


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (2.0, TypeError),
                                      (True, TypeError), ("3", TypeError), (None, TypeError)])
def test_add_tokens_refuses_bad_counts(n, error):
    decoder = make()
    weight = decoder.token_embedding.weight
    with pytest.raises(error, match="n"):
        decoder.add_tokens(n)
    assert decoder.vocab_size == V and decoder.token_embedding.weight is weight


@pytest.mark.parametrize("tie", [True, False])
def test_grown_parameters_train_and_keep_dtype_and_device(tie):
    decoder = make(tie_embeddings=tie).double()
    device = decoder.token_embedding.weight.device
    decoder.add_tokens(N)
    names = {name for name, _ in decoder.named_parameters()}
    assert "token_embedding.weight" in names and ("lm_head.weight" in names) == (not tie)
    for p in (decoder.token_embedding.weight, decoder.lm_head.weight):
        assert isinstance(p, torch.nn.Parameter) and p.requires_grad
        assert p.dtype == torch.float64 and p.device == device
    decoder.train()
    logits = decoder(torch.tensor([[1, V, V + 1, 5]]))
    assert logits.dtype == torch.float64
    torch.nn.functional.cross_entropy(logits[0, :-1], torch.tensor([V, V + 1, V + 2])).backward()
    assert decoder.token_embedding.weight.grad is not None and decoder.token_embedding.weight.grad[V:].abs().sum() > 0
    assert decoder.lm_head.weight.grad[V:].abs().sum() > 0
    opt = torch.optim.SGD(decoder.parameters(), lr=0.1)
    before = decoder.token_embedding.weight.detach().clone()
    opt.step()
    assert not torch.equal(decoder.token_embedding.weight[V:].detach(), before[V:])


@pytest.mark.parametrize("tie", [True, False])
def test_grown_weights_are_leaves_not_a_graph_of_the_old_ones(tie):
    decoder = make(tie_embeddings=tie)
    decoder.add_tokens(1)
    for p in (decoder.token_embedding.weight, decoder.lm_head.weight):
        assert p.is_leaf and p.grad_fn is None
    assert len(list(decoder.parameters())) == len(list(make(tie_embeddings=tie).parameters()))


# ----------------------------------------------------------------------------------------------- chat_tokenizer
NEW = ("4", "(", ")", "count", "so")


def test_chat_tokenizer_new_words_come_after_the_roles():
    old, tok = chat_tokenizer(), chat_tokenizer(NEW)
    last = old.stoi["<assistant>"]
    assert last == len(old) - 1 and old.stoi[f"<{ROLES[0]}>"] == last - 1
    assert [tok.stoi[w] for w in NEW] == list(range(last + 1, last + 1 + len(NEW)))
    assert tok.itos[:len(old)] == old.itos and len(tok) == len(old) + len(NEW)
    assert chat_tokenizer(()).itos == old.itos


def test_chat_tokenizer_reads_and_writes_new_words():
    tok = chat_tokenizer(NEW)
    text = "count ( red ) so 4"
    encoded = tok.encode("count(red) so 4")
    assert encoded[1:-1] == [tok.stoi[w] for w in text.split()]
    assert tok.unk_id not in encoded and tok.decode(encoded) == text
    assert chat_tokenizer().encode("count(red) so 4")[1:-1].count(chat_tokenizer().unk_id) == 5  # unknown before


@pytest.mark.parametrize("new", [("red",), ("circle", "4"), ("<assistant>",), ("<pad>",), ("4", "4")])
def test_chat_tokenizer_refuses_words_it_knows(new):
    with pytest.raises(ValueError, match="new and distinct"):
        chat_tokenizer(new)
