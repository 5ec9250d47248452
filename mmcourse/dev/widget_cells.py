"""The lectures' widget cells, runnable without the cells that train.

A widget cell is a code cell of a lecture (notebooks/NN_*.py) that shows a widget: it calls `widgets.X(...)` or an
`*_explorer(...)` helper. `setup_source(py)` is what runs before it instead of the lecture's earlier cells: the
lecture's own imports, then `stand_ins(NN)`, small objects under the names the cell reads (an untrained tiny model,
random images, a scoring function that depends on its input). The widget's output only has to change with its
controls, not be right. Used by the browser tests (tests/browser/) and `make compat` (compat/widgets_check.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from mmcourse.dev.notebooks import ROOT, read_py

WIDGET_CALL = re.compile(r"\bwidgets\.\w+\(|\w+_explorer\(")
OWN_WIDGET = re.compile(r"\bwidgets\.\w+\(")  # a cell that builds its widget itself, not with a helper of mmcourse.viz


def lectures(root: Path = ROOT) -> list[Path]:
    """The lectures (their .py twins) that have at least one widget cell."""
    return [py for py in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")) if widget_cells(py)]


def widget_cells(py: Path) -> list[str]:
    """The sources of the lecture's code cells that show a widget, in order."""
    return [c.source for c in read_py(py).cells if c.cell_type == "code" and WIDGET_CALL.search(c.source)]


def imports(py: Path) -> str:
    """The lecture's top-level imports (not the Colab set-up's, which is inside an `if`)."""
    text = py.read_text()
    return "\n".join(ast.get_source_segment(text, node) for node in ast.parse(text).body
                     if isinstance(node, (ast.Import, ast.ImportFrom)))


def setup_source(py: Path) -> str:
    """The code to run before the lecture's widget cells: its imports, then the stand-ins for its earlier cells."""
    return (f"{imports(py)}\nfrom mmcourse.dev.widget_cells import stand_ins\n\n"
            f"globals().update(stand_ins({py.name[:2]!r}))")


def stand_ins(chapter: str) -> dict:
    """The names chapter `chapter`'s widget cells read from the lecture's earlier cells, as small stand-ins."""
    if chapter not in STAND_INS:
        raise KeyError(f"no stand-ins for chapter {chapter!r}'s widget cells (known: {sorted(STAND_INS)}): add them "
                       f"to mmcourse/dev/widget_cells.py")
    return STAND_INS[chapter]()


def tiny_vit():
    """An untrained ViT on 16 x 16 images (4 x 4 patches of 4 pixels), seeded."""
    from mmcourse.nn import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(image_size=16, patch_size=4, width=16, layers=2, heads=2)


def _features(n, d=8, seed=0):
    torch.manual_seed(seed)
    return F.normalize(torch.randn(n, d), dim=-1)


def _stand_ins_01():  # attention_explorer(vit, demo)
    return {"vit": tiny_vit(), "demo": torch.rand(3, 3, 16, 16)}


def _stand_ins_02():  # the temperature slider over a batch's similarity matrix
    img, txt = _features(6), _features(6, seed=1)
    return {"img_demo": img, "txt_demo": txt, "cosine": img @ txt.T, "learned_s": 20.0}


def _stand_ins_03():  # the caption editor: its metrics come from earlier cells; a stand-in that depends on the text
    refs = ["a red circle left of a blue square", "a blue square right of a red circle"]

    def all_scores(text, image_features, objects, refs_of_image):
        words = text.split()
        overlap = len(set(words) & {w for r in refs_of_image for w in r.split()}) / max(len(words), 1)
        return {"BLEU-1": overlap, "BLEU-4": overlap / 2, "ROUGE-L": overlap, "CIDEr-D": 3 * overlap,
                "CLIP-S": 0.5 + len(text) / 1000, "scene F1": float(overlap > 0.5)}

    return {"clip": None, "encode_images": lambda model, images: _features(images.shape[0]), "all_scores": all_scores,
            "corpus": SimpleNamespace(images=torch.rand(2, 3, 16, 16)), "demo": 0, "objs": [], "references": [refs],
            "canonical": refs[0]}


def _stand_ins_04():  # the ITM explorer over an untrained course BLIP and random frozen image tokens (1 + 8 x 8, 64)
    from mmcourse.recipes import blip_tiny

    model = blip_tiny.build(seed=0).eval()
    torch.manual_seed(0)
    test = SimpleNamespace(images=torch.rand(3, 3, 32, 32), tokens=torch.randn(3, 1 + 64, 64),
                           texts=["a red circle left of a blue square"])
    return {"model": model, "tok": blip_tiny.tokenizer(), "test": test, "device": torch.device("cpu")}


def _stand_ins_05():  # the chat: an untrained course LLaVA (one-block tower, one-layer LM) and random images
    from mmcourse.data.chat import chat_tokenizer
    from mmcourse.nn import VisionTransformer
    from mmcourse.recipes import llava_tiny, tiny_lm

    torch.manual_seed(0)
    visual = VisionTransformer(32, 4, width=16, layers=2, heads=2, output_dim=16, conv_stem=True).eval()
    model = llava_tiny.build(visual, tiny_lm.build(layers=1)).eval()
    images = torch.rand(40, 3, 32, 32)
    features = llava_tiny.patch_features(visual, images)
    sets = {name: SimpleNamespace(images=images[k::2], features=features[k::2])
            for k, name in enumerate(("seen", "held_out"))}
    return {"model": model, "tok": chat_tokenizer(), "device": torch.device("cpu"), **sets}


def _stand_ins_06():  # the guidance slider over precomputed samples: random images and made-up accuracies per weight
    from mmcourse.data import CLASS_NAMES

    weights = (0.0, 1.0, 3.0, 8.0)  # the slider starts at 3, as in the lecture: one step right is 8
    g = torch.Generator().manual_seed(0)
    return {"WEIGHTS": weights, "pair_names": list(CLASS_NAMES),
            "sweep": {w: {"both": 0.5 + w / 20, "n": 80, "diversity": 0.1 - w / 100} for w in weights},
            "sweep_images": {w: torch.rand(len(CLASS_NAMES), 3, 16, 16, generator=g) for w in weights}}


def _stand_ins_07():  # the SNR slider: four short sentences, their babble, the four recognisers untrained
    from mmcourse.recipes import avsr_tiny

    test = avsr_tiny.utterances(4, seed=0)
    return {"test": test, "test_babble": avsr_tiny.babble_bank(test, n=4), "k": 0, "models": avsr_tiny.build().eval()}


STAND_INS = {"01": _stand_ins_01, "02": _stand_ins_02, "03": _stand_ins_03, "04": _stand_ins_04,
             "05": _stand_ins_05, "06": _stand_ins_06, "07": _stand_ins_07}
