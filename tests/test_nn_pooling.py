"""EOT pooling: the position comes from the token ids, the first end-of-text token of each row."""

import pytest
import torch

from mmcourse.data import EOT_ID, Tokenizer
from mmcourse.nn import eot_positions, pool_eot


def test_pool_eot_takes_the_first_eot_of_each_row():
    hidden = torch.randn(3, 5, 4)
    ids = torch.tensor([[7, 7, 1, 0, 0], [1, 1, 1, 1, 1], [7, 7, 7, 7, 1]])
    torch.testing.assert_close(pool_eot(hidden, ids, eot_id=1), hidden[[0, 1, 2], [2, 0, 4]])


def test_pool_eot_names_rows_without_eot():
    ids = torch.tensor([[5, 1, 0], [5, 5, 5], [1, 0, 0], [2, 2, 2]])
    with pytest.raises(ValueError, match=r"no end-of-text token \(id 1\) in row\(s\) \[1, 3\]"):
        pool_eot(torch.randn(4, 3, 2), ids, eot_id=1)
    with pytest.raises(ValueError, match=r"ids: expected shape \(4, 3\), got \(4, 2\)"):
        pool_eot(torch.randn(4, 3, 2), ids[:, :2], eot_id=1)


def test_pool_eot_is_not_pooling_where_the_activation_is_largest():
    hidden = torch.zeros(2, 4, 3)
    hidden[:, 3, 0] = 9.0  # a padding position happens to hold the largest activation
    ids = torch.tensor([[5, 1, 0, 0], [5, 5, 1, 0]])
    torch.testing.assert_close(pool_eot(hidden, ids, 1), hidden[[0, 1], [1, 2]])


def test_eot_positions_of_tokenized_captions():
    tok = Tokenizer()
    texts = ["a red circle", "a photo of a large green square left of a small blue triangle", "square"]
    ids = tok(texts)
    assert eot_positions(ids, EOT_ID).tolist() == [len(tok.encode(t)) - 1 for t in texts]
    assert not torch.equal(eot_positions(ids, EOT_ID), ids.argmax(1))  # <eot> is not the largest id here
    short = tok(texts, context_length=6)
    with pytest.raises(ValueError, match="no end-of-text"):
        eot_positions(short[:, :-1], EOT_ID)
    with pytest.raises(TypeError, match="integer"):
        eot_positions(short.float(), EOT_ID)
