"""Attention drawn beside the image: raw CLS weights as heatmaps with colorbars, the objects' outline as a contour."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mmcourse.data import render, sample_scenes  # noqa: E402
from mmcourse.nn import VisionTransformer, attention_rollout  # noqa: E402
from mmcourse.viz import attention as viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_maps_and_rollout_beside_the_image():
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=16, patch_size=4, width=16, layers=2, heads=2).eval()
    images = render(sample_scenes(2, seed=1, min_objects=1, max_objects=1), 16, seed=1)
    attn = vit(images, return_attn=True).attentions
    fig = viz.plot_attention_maps(images[1], attn, index=1, style="beside")
    heatmaps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.images and ax.collections]
    assert len(heatmaps) == 2 * 3  # 2 layers x (2 heads + mean), each with the outline contour on top
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2  # one colour scale per layer
    shown = torch.as_tensor(heatmaps[3 + 1].images[0].get_array().data)  # layer 1, head 1: raw weights
    torch.testing.assert_close(shown, viz.cls_attention_grid(attn[1][1, 1]))
    fig = viz.plot_attention_rollout(images[0], attn, index=0, style="beside")
    assert fig.axes[2].get_title() == "rollout (2 layers)"
    torch.testing.assert_close(torch.as_tensor(fig.axes[2].images[0].get_array().data),
                               viz.cls_attention_grid(attention_rollout(attn)[0]))
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2
    with pytest.raises(ValueError, match="style must be 'overlay' or 'beside'"):
        viz.plot_attention_maps(images[0], attn, style="contour")


def test_pos_embedding_plot_takes_a_title():
    fig = viz.plot_pos_embedding_similarity(torch.randn(1 + 9, 8), title="what training changed")
    assert fig.axes[0].get_title() == "what training changed"
