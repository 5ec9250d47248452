"""The shapes world: colours, shapes, sizes, random scenes and a vectorised renderer.

A scene holds up to K objects; each object has a shape, a colour, a size and a centre. Centres are in
normalised coordinates (x right, y down, both in [0, 1]), so one scene renders at any resolution.
Within a scene objects never overlap and no two objects share the same (colour, shape) pair, so
"the red circle" always names one object.

Randomness is drawn from seeded CPU generators (`mmcourse.utils.make_generator`, then moved to the device): the
same seed gives identical tensors on any machine.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from mmcourse.utils import check_number, describe, make_generator

__all__ = [
    "COLOURS", "COLOUR_NAMES", "SHAPES", "SIZES", "HELD_OUT", "CLASS_NAMES", "BACKGROUND",
    "name_index", "check_names", "check_pairs", "check_objects", "check_scenes", "allowed_pairs", "Scenes",
    "sample_scenes",
    "shape_twins", "render",
]

COLOURS: dict[str, tuple[float, float, float]] = {  # name -> RGB in [0, 1]
    "red": (0.90, 0.12, 0.12),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.95, 0.90, 0.10),
    "green": (0.15, 0.75, 0.20),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.15, 0.30, 0.95),
    "purple": (0.60, 0.20, 0.85),
    "pink": (1.00, 0.50, 0.78),
}
COLOUR_NAMES = tuple(COLOURS)
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
SIZE_RADIUS = (0.09, 0.14)  # object radius per size, as a fraction of the image side
# Extent of each shape around its centre, in units of the object radius: half-side of the square,
# circumradius of the triangle (chosen so the three shapes have similar areas).
SQUARE_HALF, TRIANGLE_R = 0.85, 1.35
BOUNDING_RADIUS = (1.0, SQUARE_HALF * math.sqrt(2), TRIANGLE_R)  # circle, square, triangle
GAP, EDGE = 0.04, 0.02  # minimum free space between two objects / between an object and the border
HEX_PACKING = math.pi / (2 * math.sqrt(3))  # densest packing of equal discs in the plane
BACKGROUND = (0.08, 0.08, 0.10)
# Colour-shape pairs that never appear in split="train" (each colour and shape still does).
HELD_OUT = (("green", "triangle"), ("blue", "circle"), ("yellow", "square"), ("purple", "triangle"))
# The colour x shape classes, class index = colour * len(SHAPES) + shape.
CLASS_NAMES = tuple(f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES)
SPLITS = ("all", "train", "test")
_CHUNK = 1024  # scenes rendered at once; fixed so the noise stream never depends on memory settings


def name_index(name: str, allowed: tuple[str, ...], what: str) -> int:
    """Index of `name` in `allowed`, or a ValueError naming the allowed values."""
    if name not in allowed:
        raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")
    return allowed.index(name)


def check_names(names, allowed: tuple[str, ...], what: str, arg: str | None = None) -> list[str]:
    """`names` as a list, or a ValueError naming the first unknown one and the allowed values. Given the argument's
    name `arg`, also a clear error unless `names` is a non-empty list (a bare str is not a list of names)."""
    if arg is not None and (isinstance(names, str) or not isinstance(names, (list, tuple)) or not names):
        raise TypeError(f"{arg}: expected a non-empty list of {what} names, got {describe(names)}")
    for name in names:
        name_index(name, allowed, what)
    return list(names)


def check_pairs(pairs, arg: str) -> list[tuple[str, str]]:
    """`pairs` as a list of (colour, shape) name tuples, or a clear error naming the argument `arg`."""
    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)) or \
            not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise TypeError(f"{arg}: expected a list of (colour, shape) pairs, got {describe(pairs)}")
    for c, s in pairs:
        name_index(c, COLOUR_NAMES, f"{arg} colour")
        name_index(s, SHAPES, f"{arg} shape")
    return [tuple(p) for p in pairs]


def check_objects(objects, arg: str = "objects", keys=("colour", "shape", "size", "x", "y")) -> list[dict]:
    """`objects` (a scene's object dicts, as `Scenes.objects(i)` gives them) as a list, or a clear error naming `arg`
    unless it is a list of dicts that have `keys`."""
    if isinstance(objects, (str, dict)) or not isinstance(objects, (list, tuple)):
        raise TypeError(f"{arg}: expected a list of object dicts (Scenes.objects(i)), got {describe(objects)}")
    for o in objects:
        if not isinstance(o, dict) or not set(keys) <= set(o):
            raise ValueError(f"{arg}: expected object dicts with keys {', '.join(keys)}, got {o!r}"[:200])
    return list(objects)


def check_scenes(scenes, arg: str = "scenes") -> None:
    if not isinstance(scenes, Scenes):
        raise TypeError(f"{arg}: expected a Scenes (from sample_scenes), got {describe(scenes)}")


def allowed_pairs(split: str = "all", held_out=HELD_OUT, colours=None, shapes=None) -> list[tuple[int, int]]:
    """(colour, shape) index pairs a split may use: "train" excludes `held_out`, "test" has only those."""
    name_index(split, SPLITS, "split")
    colours = COLOUR_NAMES if colours is None else check_names(colours, COLOUR_NAMES, "colour", "colours")
    shapes = SHAPES if shapes is None else check_names(shapes, SHAPES, "shape", "shapes")
    held = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in check_pairs(held_out, "held_out")}
    pairs = [(name_index(c, COLOUR_NAMES, "colour"), name_index(s, SHAPES, "shape"))
             for c in colours for s in shapes]
    if split == "train":
        pairs = [p for p in pairs if p not in held]
    elif split == "test":
        pairs = [p for p in pairs if p in held]
    return pairs


@dataclass
class Scenes:
    """A batch of N scenes with room for K objects each; empty slots have -1 in shape, colour and size.

    shape, colour, size: (N, K) long indices into SHAPES, COLOUR_NAMES, SIZES.
    center: (N, K, 2) float, (x, y) in [0, 1] with y pointing down.
    """

    shape: Tensor
    colour: Tensor
    size: Tensor
    center: Tensor

    @property
    def present(self) -> Tensor:
        """(N, K) bool: which slots hold an object."""
        return self.shape >= 0

    @property
    def n_objects(self) -> Tensor:
        """(N,) long: objects per scene."""
        return self.present.sum(1)

    @property
    def label(self) -> Tensor:
        """(N, K) long class index colour * len(SHAPES) + shape (-1 in empty slots)."""
        return torch.where(self.present, self.colour * len(SHAPES) + self.shape, -1)

    def radius(self) -> Tensor:
        """(N, K) object radius as a fraction of the image side (0 in empty slots)."""
        table = torch.tensor(SIZE_RADIUS, device=self.size.device)
        return torch.where(self.present, table[self.size.clamp(min=0)], 0.0)

    def extent(self) -> Tensor:
        """(N, K) bounding radius of each object around its centre, a fraction of the image side (0 if empty)."""
        return torch.tensor(BOUNDING_RADIUS, device=self.shape.device)[self.shape.clamp(min=0)] * self.radius()

    def boxes(self, resolution: int) -> Tensor:
        """(N, K, 4) bounding boxes (x0, y0, x1, y1) in pixels (0 in empty slots)."""
        check_number(resolution, "resolution", integer=True, low=1)
        r = self.radius() * resolution
        cx, cy = (self.center * resolution).unbind(-1)
        half_w = torch.stack([r, SQUARE_HALF * r, TRIANGLE_R * r * math.sqrt(3) / 2], -1)
        up = torch.stack([r, SQUARE_HALF * r, TRIANGLE_R * r], -1)  # extent above the centre
        down = torch.stack([r, SQUARE_HALF * r, TRIANGLE_R * r / 2], -1)  # extent below the centre
        s = self.shape.clamp(min=0)[..., None]
        hw, u, d = (t.gather(-1, s)[..., 0] for t in (half_w, up, down))
        box = torch.stack([cx - hw, cy - u, cx + hw, cy + d], -1)
        return box * self.present[..., None]

    def objects(self, i: int) -> list[dict]:
        """Scene `i` as a list of dicts: colour, shape, size names and the centre x, y."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -len(self) <= i < len(self):
            raise IndexError(f"i: expected a scene index in [0, {len(self)}), got {i!r}")
        rows = zip(self.shape[i].tolist(), self.colour[i].tolist(), self.size[i].tolist(),
                   self.center[i].tolist(), strict=True)
        return [{"colour": COLOUR_NAMES[c], "shape": SHAPES[s], "size": SIZES[z], "x": x, "y": y}
                for s, c, z, (x, y) in rows if s >= 0]

    def __len__(self) -> int:
        return self.shape.shape[0]

    def __getitem__(self, index) -> Scenes:
        """Scenes selected by an index, slice, or index tensor along N."""
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"scene index {index} out of range for {len(self)} scenes")
            index = slice(index % len(self), index % len(self) + 1)
        return Scenes(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(self, device) -> Scenes:
        return Scenes(*(getattr(self, f.name).to(device) for f in fields(self)))

    @classmethod
    def cat(cls, parts: list[Scenes]) -> Scenes:
        """Scenes of several batches (with the same K) one after the other."""
        return cls(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    @classmethod
    def from_objects(cls, scenes: list[list[dict]]) -> Scenes:
        """Scenes by hand: each a list of dicts with colour, shape and size names and x, y in [0, 1]."""
        if isinstance(scenes, str) or not isinstance(scenes, (list, tuple)) or not scenes:
            raise ValueError(f"scenes: expected a non-empty list of scenes (lists of object dicts), got {scenes!r}")
        scenes = [check_objects(objs, f"scenes[{i}]") for i, objs in enumerate(scenes)]
        K = max(1, max(len(objs) for objs in scenes))
        out = cls(*(torch.full((len(scenes), K), -1) for _ in range(3)), torch.zeros(len(scenes), K, 2))
        for i, objs in enumerate(scenes):
            for k, o in enumerate(objs):
                out.shape[i, k] = name_index(o["shape"], SHAPES, "shape")
                out.colour[i, k] = name_index(o["colour"], COLOUR_NAMES, "colour")
                out.size[i, k] = name_index(o["size"], SIZES, "size")
                if not (0 <= o["x"] <= 1 and 0 <= o["y"] <= 1):
                    raise ValueError(f"object x, y must be in [0, 1], got x={o['x']}, y={o['y']}")
                out.center[i, k] = torch.tensor([float(o["x"]), float(o["y"])])
        return out


def sample_scenes(n: int, seed: int | torch.Generator = 0, *, min_objects: int = 1, max_objects: int = 3,
                  split: str = "all", held_out=HELD_OUT, colours=None, shapes=None, sizes=None) -> Scenes:
    """N random scenes with `min_objects`..`max_objects` non-overlapping objects each.

    split: "all" (any colour-shape pair), "train" (no pair from `held_out`), "test" (only `held_out` pairs).
    colours, shapes, sizes: optional lists of allowed names (default: all).
    """
    check_number(n, "n", integer=True, low=1)
    check_number(max_objects, "max_objects", integer=True, low=1)
    check_number(min_objects, "min_objects", integer=True, low=1, high=max_objects)
    pairs = torch.tensor(allowed_pairs(split, held_out, colours, shapes), dtype=torch.long).reshape(-1, 2)
    if len(pairs) < max_objects:
        raise ValueError(f"split {split!r} allows {len(pairs)} colour-shape pairs, fewer than "
                         f"max_objects={max_objects} (objects in a scene have distinct pairs)")
    sizes = SIZES if sizes is None else check_names(sizes, SIZES, "size", "sizes")
    size_ids = torch.tensor([SIZES.index(z) for z in sizes])
    g = make_generator(seed, "scenes")
    K = max_objects
    n_obj = torch.randint(min_objects, max_objects + 1, (n,), generator=g)
    # distinct pairs per scene: the K highest of random scores over the allowed pairs
    pick = torch.rand(n, len(pairs), generator=g).topk(K, dim=1).indices
    colour, shape = pairs[pick].unbind(-1)
    size = size_ids[torch.randint(len(size_ids), (n, K), generator=g)]
    present = torch.arange(K) < n_obj[:, None]
    colour, shape, size = (torch.where(present, t, -1) for t in (colour, shape, size))
    scenes = Scenes(shape, colour, size, torch.zeros(n, K, 2))
    scenes.center = _place(scenes, g)
    return scenes


def shape_twins(scenes: Scenes, seed: int | torch.Generator = 0, *, split: str = "train",
                held_out=HELD_OUT) -> Scenes:
    """Minimal pairs: the same scenes, each with one object given another shape (colour and size kept).

    Telling a scene from its twin takes shape, which colour alone cannot give. The new (colour, shape) pair is one
    `split` allows and no other object of the scene has; a scene is laid out anew only where the new shape
    would overlap another object or leave the canvas. In the rare scene where no object can change (1 %: e.g. a
    green circle beside a green square, green triangles being held out) the twin is the scene itself.
    """
    check_scenes(scenes)
    g = make_generator(seed, "twins")
    allowed = set(allowed_pairs(split, held_out))
    shape = scenes.shape.clone()
    start = torch.randint(scenes.shape.shape[1], (len(scenes),), generator=g)
    pick = torch.rand(len(scenes), generator=g)
    for i, (shapes, colours) in enumerate(zip(scenes.shape.tolist(), scenes.colour.tolist(), strict=True)):
        n = sum(s >= 0 for s in shapes)
        taken = set(zip(colours[:n], shapes[:n], strict=True))
        for k in ((start[i].item() + j) % n for j in range(n)):  # the first object, from a random one, that can
            options = [s for s in range(len(SHAPES)) if (colours[k], s) in allowed - taken]
            if options:
                shape[i, k] = options[int(pick[i] * len(options))]
                break
    twins = Scenes(shape, scenes.colour.clone(), scenes.size.clone(), scenes.center.clone())
    rho = twins.extent()
    lo = (rho + EDGE)[..., None]
    outside = (((twins.center < lo) | (twins.center > 1 - lo)).any(-1) & twins.present).any(1)
    moved = outside | _overlap(twins.center, rho, twins.present)
    twins.center[moved] = _place(twins[moved], g)
    return twins


def _overlap(center: Tensor, rho: Tensor, present: Tensor) -> Tensor:
    """(N,) bool: two objects of a scene closer than their bounding radii rho (N, K) plus GAP."""
    K = center.shape[1]
    both = present[:, :, None] & present[:, None, :] & ~torch.eye(K, dtype=torch.bool)
    return (both & (torch.cdist(center, center) < rho[:, :, None] + rho[:, None, :] + GAP)).flatten(1).any(1)


def _place(scenes: Scenes, g: torch.Generator, max_rounds: int = 10_000) -> Tensor:
    """Rejection sampling of non-overlapping centres, vectorised: redraw every scene that has an overlap."""
    rho = scenes.extent()  # (N, K)
    lo = rho + EDGE
    # Necessary condition: the free discs (radius rho + GAP / 2) must pack into the usable square.
    free_area = (math.pi * (rho + GAP / 2) ** 2 * scenes.present).sum(1)
    if (free_area > HEX_PACKING * (1 - 2 * EDGE + GAP) ** 2).any():
        worst = scenes.n_objects[free_area.argmax()].item()
        raise ValueError(f"impossible layout: {worst} objects of these sizes cannot fit on the canvas "
                         f"without overlap; use fewer objects (max_objects) or smaller sizes")
    N, K = scenes.shape.shape
    center = torch.zeros(N, K, 2)
    todo = torch.arange(N)
    for _ in range(max_rounds):
        u = torch.rand(len(todo), K, 2, generator=g)
        center[todo] = lo[todo, :, None] + u * (1 - 2 * lo[todo, :, None])
        todo = todo[_overlap(center[todo], rho[todo], scenes.present[todo])]
        if len(todo) == 0:
            return torch.where(scenes.present[..., None], center, 0.0)
    raise ValueError(f"impossible layout: could not place the objects of {len(todo)} scenes without overlap "
                     f"after {max_rounds} tries; use fewer objects (max_objects) or smaller sizes")


def render(scenes: Scenes, resolution: int = 32, seed: int | torch.Generator = 0, *, antialias: bool = True,
           colour_jitter: float = 0.03, noise: float = 0.02, device=None,
           return_masks: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Render scenes to RGB images (N, 3, R, R) in [0, 1], fully vectorised with signed distances.

    Each object's signed distance d (pixels, negative inside) becomes a coverage alpha = clamp(0.5 - d, 0, 1):
    a one-pixel anti-aliased edge (a hard edge when antialias=False). `colour_jitter` is the std of a
    per-object RGB offset, `noise` the std of per-pixel Gaussian noise. With return_masks=True also returns
    the per-object coverage (N, K, R, R). Output lives on `device` (default: the scenes' device).
    """
    if not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an int >= 8, got {resolution!r}")
    check_scenes(scenes)
    check_number(colour_jitter, "colour_jitter", low=0)
    check_number(noise, "noise", low=0)
    if not torch.isfinite(scenes.center).all():
        raise ValueError("scenes: object centres must be finite numbers in [0, 1], got NaN or inf")
    device = scenes.shape.device if device is None else torch.device(device)
    g = make_generator(seed, "render")
    images, masks = [], []
    for start in range(0, len(scenes), _CHUNK):
        part = scenes[start:start + _CHUNK].to("cpu")
        N, K = part.shape.shape
        jitter = torch.randn(N, K, 3, generator=g) * colour_jitter
        pixel_noise = torch.randn(N, 3, resolution, resolution, generator=g) * noise
        image, mask = _render_chunk(part.to(device), resolution, antialias, jitter.to(device), return_masks)
        images.append((image + pixel_noise.to(device)).clamp(0, 1))
        masks.append(mask)
    return (torch.cat(images), torch.cat(masks)) if return_masks else torch.cat(images)


def _render_chunk(scenes: Scenes, R: int, antialias: bool, jitter: Tensor,
                  want_coverage: bool) -> tuple[Tensor, Tensor | None]:
    """Composite the objects of N scenes over the background: (N, 3, R, R) image, (N, K, R, R) coverage.

    Each object is drawn only inside a small w x w window around it (every window the same size, so the
    M objects of the chunk are one (M, w, w) tensor), then added into its scene's image.
    """
    device = scenes.shape.device
    N, K = scenes.shape.shape
    idx = scenes.present.flatten().nonzero()[:, 0]  # the M objects present, as flat (scene * K + slot)
    M, shape = len(idx), scenes.shape.flatten()[idx]
    c = scenes.center.flatten(0, 1)[idx] * R  # (M, 2) centres in pixels
    r = scenes.radius().flatten()[idx] * R  # (M,) radii in pixels
    bounding = torch.tensor(BOUNDING_RADIUS, device=device)[shape] * r
    w = min(R, math.ceil(2 * bounding.max().item()) + 2) if M else 1
    origin = (c - w / 2).round().clamp(0, R - w).long()  # (M, 2) top-left pixel of each window
    xs, ys = (origin[:, i, None] + torch.arange(w, device=device) for i in (0, 1))  # (M, w) pixel indices
    px = (xs + 0.5 - c[:, 0, None]).view(M, 1, w)  # x of pixel centres relative to the object centre
    py = (ys + 0.5 - c[:, 1, None]).view(M, w, 1)
    sdf = torch.empty(M, w, w, device=device)
    for s, shape_sdf in enumerate((_circle, _square, _triangle)):  # each shape's formula on its objects only
        sel = (shape == s).nonzero()[:, 0]
        sdf[sel] = shape_sdf(px[sel], py[sel], r[sel, None, None])
    alpha = ((0.5 - sdf).clamp(0, 1) if antialias else (sdf <= 0).float()).view(M, w * w)
    pixel = (ys[:, :, None] * R + xs[:, None, :]).view(M, w * w)  # flat pixel index of each window cell
    palette = torch.tensor(list(COLOURS.values()), device=device)
    rgb = (palette[scenes.colour.flatten()[idx]] + jitter.flatten(0, 1)[idx]).clamp(0, 1)  # (M, 3)
    bg = torch.tensor(BACKGROUND, device=device)
    image = bg.view(1, 3, 1).repeat(N, 1, R * R)
    channel = torch.arange(3, device=device).view(1, 3, 1)
    contribution = alpha[:, None] * (rgb - bg)[..., None]  # (M, 3, w * w)
    image.index_put_((idx[:, None, None] // K, channel, pixel[:, None]), contribution, accumulate=True)
    if not want_coverage:
        return image.view(N, 3, R, R), None
    coverage = torch.zeros(N * K, R * R, device=device)
    coverage[idx[:, None], pixel] = alpha
    return image.view(N, 3, R, R), coverage.view(N, K, R, R)


def _circle(px: Tensor, py: Tensor, r: Tensor) -> Tensor:
    """Signed distance to a circle of radius r; px (M, 1, R) and py (M, R, 1) broadcast to (M, R, R)."""
    return torch.sqrt(px**2 + py**2) - r


def _square(px: Tensor, py: Tensor, r: Tensor) -> Tensor:
    half = SQUARE_HALF * r
    qx, qy = px.abs() - half, py.abs() - half
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _triangle(px: Tensor, py: Tensor, r: Tensor) -> Tensor:
    """Equilateral triangle pointing up, circumradius R: the largest of its three edge distances."""
    R = TRIANGLE_R * r
    s, c = math.sin(math.pi / 6), math.cos(math.pi / 6)
    bottom = py - R * s  # the inradius is R * sin(30 deg)
    left, right = -c * px - s * py - R * s, c * px - s * py - R * s
    return torch.maximum(bottom, torch.maximum(left, right))
