"""mmcourse.viz: what the figures show is the right data (attention in the image's orientation, training curves)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mmcourse.nn import VisionTransformer, attention_rollout, patchify  # noqa: E402
from mmcourse.train import History  # noqa: E402
from mmcourse.viz import attention as viz  # noqa: E402
from mmcourse.viz import plot_history  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def vit_and_output(b=2):
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=16, patch_size=4, width=16, layers=2, heads=2).eval()
    images = torch.rand(b, 3, 16, 16)
    return vit, images, vit(images, return_attn=True)


def minmax(t):
    return (t - t.min()) / (t.max() - t.min())


def test_cls_grid_uses_the_patchify_order():
    """A bright patch at (row 1, col 3) of the image must light up grid cell (1, 3)."""
    image = torch.zeros(1, 3, 16, 16)
    image[..., 4:8, 12:16] = 1.0
    bright = patchify(image, 4)[0].sum(-1).argmax()  # index of that patch among the tokens
    attn = torch.full((17, 17), 0.01)
    attn[0, 1 + bright] = 1.0
    grid = viz.cls_attention_grid(attn)
    assert grid.shape == (4, 4) and grid[1, 3] == 1.0 and grid.sum() == pytest.approx(1.0 + 0.01 * 15)
    with pytest.raises(ValueError, match="square number of patches, got 18 tokens"):
        viz.cls_attention_grid(torch.rand(18, 18))


def test_attention_maps_grid_shows_each_layer_and_head():
    _, images, out = vit_and_output()
    fig = viz.plot_attention_maps(images[1], out.attentions, index=1, style="overlay")
    axes = fig.axes
    assert len(axes) == 2 * 3  # 2 layers x (2 heads + mean)
    assert [ax.get_title() for ax in axes[:3]] == ["head 0", "head 1", "mean"]
    shown = axes[3 * 1 + 1].images[1].get_array()  # layer 1, head 1, the overlay above the image
    expected = minmax(viz.cls_attention_grid(out.attentions[1][1, 1]))
    torch.testing.assert_close(torch.as_tensor(shown.data), expected)
    with pytest.raises(IndexError, match=r"index must be in \[0, 1\], got 2"):
        viz.plot_attention_maps(images[0], out.attentions, index=2)


def test_rollout_plot_shows_the_rollout():
    _, images, out = vit_and_output()
    fig = viz.plot_attention_rollout(images[0], out.attentions, index=0, style="overlay")
    assert fig.axes[2].get_title() == "rollout (2 layers)"
    expected = minmax(viz.cls_attention_grid(attention_rollout(out.attentions)[0]))
    torch.testing.assert_close(torch.as_tensor(fig.axes[2].images[1].get_array().data), expected)


def test_pos_embedding_similarity_tiles():
    pos = torch.randn(1 + 9, 8)
    fig = viz.plot_pos_embedding_similarity(pos)
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (3 * 4 - 1, 3 * 4 - 1)
    normed = torch.nn.functional.normalize(pos[1:], dim=-1)
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        tile = torch.as_tensor(mosaic[i * 4:i * 4 + 3, j * 4:j * 4 + 3].data, dtype=torch.float32)
        torch.testing.assert_close(tile, (normed @ normed[3 * i + j]).reshape(3, 3))
        assert tile[i, j] == pytest.approx(1.0)  # each position is most similar to itself
    with pytest.raises(ValueError, match=r"square number of patches, got shape \(9, 8\)"):
        viz.plot_pos_embedding_similarity(torch.randn(9, 8))


def test_explorer_redraws_on_every_control(monkeypatch):
    import IPython.display
    import ipywidgets as widgets

    titles = []
    monkeypatch.setattr(IPython.display, "display", lambda fig: titles.append(fig._suptitle.get_text()))
    vit, images, _ = vit_and_output(b=3)
    vit.train()
    box = viz.attention_explorer(vit, images)
    assert isinstance(box, widgets.VBox) and vit.training  # mode restored
    index, layer, head = box.children[0].children
    assert titles == ["layer 1, head mean"]
    index.value = 2
    head.value = 1
    layer.value = -1
    layer.value = 0
    assert titles[1:] == ["layer 1, head mean", "layer 1, head 1", "rollout (all layers, heads averaged)",
                          "layer 0, head 1"]
    assert index.max == 2 and [o[0] for o in layer.options] == ["rollout", "layer 0", "layer 1"]


def test_plot_matrices_draws_each_panel_on_its_scale():
    from mmcourse.viz import plot_matrices

    probs, signed = torch.rand(3, 3).softmax(dim=1), torch.tensor([[2.0, -0.5], [0.1, -1.0]])
    fig = plot_matrices([(probs, "p", "prob"), (signed, "g", "signed"), (probs * 7, "a", "auto")])
    images = [ax.images[0] for ax in fig.axes if ax.images and ax.get_title()]
    assert [im.get_clim() for im in images] == [(0, 1), (-2.0, 2.0), pytest.approx((7 * probs.min().item(),
                                                                                  7 * probs.max().item()))]
    assert torch.equal(torch.as_tensor(images[1].get_array().data), signed)
    fig = plot_matrices([(torch.rand(12, 12), "twelve items", "auto")])
    fig.canvas.draw()
    ticks = list(fig.axes[0].get_xticks()) + list(fig.axes[0].get_yticks())
    assert ticks and all(float(t).is_integer() for t in ticks)  # item axes: no tick at 2.5
    with pytest.raises(ValueError, match="scale must be one of prob, signed, auto, got 'log'"):
        plot_matrices([(probs, "p", "log")])
    with pytest.raises(ValueError, match=r"must be a matrix \(R, C\), got shape \(3,\)"):
        plot_matrices([(probs[0], "p", "prob")])


def test_plot_history_draws_loss_and_evals():
    h = History(loss=[1.0 / (i + 1) for i in range(50)], evals=[{"step": 25, "acc": 0.5}, {"step": 50, "acc": 0.9}])
    fig = plot_history(h)
    ax, ax2 = fig.axes
    assert ax.get_lines()[0].get_ydata()[0] > ax.get_lines()[0].get_ydata()[-1]
    assert list(ax2.get_lines()[0].get_ydata()) == [0.5, 0.9]
    with pytest.raises(ValueError, match="no steps"):
        plot_history(History())


def test_plot_history_draws_only_the_metrics_asked_for():
    h = History(loss=[1.0] * 30, evals=[{"step": 30, "acc": 0.9, "s": 46.0}])
    assert [line.get_label() for line in plot_history(h, metrics=["acc"]).axes[1].get_lines()] == ["acc"]
    assert len(plot_history(h).axes[1].get_lines()) == 2
    with pytest.raises(ValueError, match="no eval metric 'loss'; the history has 'acc', 's'"):
        plot_history(h, metrics=["loss"])


def test_word_attention_draws_one_query_of_the_cross_attention():
    torch.manual_seed(0)
    cross = [torch.rand(2, 2, 5, 1 + 16).softmax(-1) for _ in range(2)]  # (B, heads, text positions, 1 + patches)
    fig = viz.plot_word_attention(torch.rand(3, 16, 16), cross, position=3, word="circle", index=1)
    shown = torch.as_tensor(fig.axes[2].images[0].get_array().data)  # layer 0: image, head 0, head 1, mean
    torch.testing.assert_close(shown, cross[0][1, 1, 3, 1:].reshape(4, 4).float())
    assert "'circle'" in fig._suptitle.get_text()


def test_text_image_explorer_redraws_when_the_caption_changes(monkeypatch):
    import IPython.display

    drawn = []
    monkeypatch.setattr(IPython.display, "display", lambda fig: drawn.append([a.get_title() for a in fig.axes]))

    def score(index, text):
        words = text.split()
        return 0.25 * (index + 1), words, torch.rand(len(words), 4, 4)

    box = viz.text_image_explorer(torch.rand(3, 3, 16, 16), score, "a red circle")
    index, caption = box.children[0].children
    caption.value = "a blue square"
    index.value = 2
    assert drawn[0] == ["P(match) = 0.250", "'a'", "'red'", "'circle'"]
    assert drawn[1][1:] == ["'a'", "'blue'", "'square'"] and drawn[2][0] == "P(match) = 0.750"
