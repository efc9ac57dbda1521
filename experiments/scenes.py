"""Synthetic scenes and the questions asked about them: the zoo's stand-in for COCO, PointQA and POPE.

A scene is a grid of cells, each empty or holding one object (a colour, a shape, a size, a small
jitter). Shapes fall in two super-categories, round and angular, like PointQA's "beings" and
"vehicles"; a category is a colour-shape pair ("red circle"). Categories are drawn with fixed,
unequal frequencies so that POPE's "popular" negatives mean something. Everything is a pure
function of a `random.Random`, so a seed fixes every image and every answer.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Collection

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "green": (40, 185, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
}
SHAPES: dict[str, str] = {"circle": "round", "ellipse": "round", "square": "angular", "triangle": "angular"}
PLURALS = {"circle": "circles", "ellipse": "ellipses", "square": "squares", "triangle": "triangles"}
SIZES: dict[str, float] = {"small": 0.45, "large": 0.7}  # side as a fraction of the cell
RELATIONS = ("left", "right", "above", "below")
COUNTS = (1, 2, 3, 4)
# Objects in a POPE scene and distractors beside a spatial question's pair: few, so that tiny models
# can learn to ground these questions within the small preset's budget.
POPE_OBJECTS = (1, 2)
SPATIAL_DISTRACTORS = (0, 0)
BACKGROUND = (24, 24, 24)
BOX_COLOUR = (255, 255, 255)

# Unequal category frequencies (products of these weights): what "popular" means for POPE.
COLOUR_WEIGHTS = dict(zip(COLOURS, (0.3, 0.25, 0.2, 0.15, 0.1), strict=True))
SHAPE_WEIGHTS = dict(zip(SHAPES, (0.35, 0.3, 0.2, 0.15), strict=True))
CATEGORIES: list[tuple[str, str]] = [(c, s) for c in COLOURS for s in SHAPES]
CATEGORY_WEIGHTS = [COLOUR_WEIGHTS[c] * SHAPE_WEIGHTS[s] for c, s in CATEGORIES]
POPULARITY = sorted(CATEGORIES, key=lambda cat: -COLOUR_WEIGHTS[cat[0]] * SHAPE_WEIGHTS[cat[1]])

TASKS = ("count_general", "count_object", "count_super", "pope", "attribute", "spatial")
# Training-only tasks, without a benchmark; a preset's `mixture` opts in by giving one a weight.
# colour_of ("What colour is the circle ?") ties a question word to the patch it names with a direct
# read-out, the first-order signal POPE's yes/no interaction lacks on its own.
AUX_TASKS = ("colour_of",)
POPE_NEGATIVES = ("random", "popular", "adversarial")
BENCHMARKS = (
    "count_general",
    "count_object",
    "count_super",
    "pope_random",
    "pope_popular",
    "pope_adversarial",
    "attribute",
    "spatial",
)


def answers(task: str) -> list[str]:
    """Every answer an item of `task` (a training task or a benchmark name) can have."""
    if task.startswith("count_"):
        return [str(k) for k in COUNTS]
    if task == "pope" or task.startswith("pope_"):
        return ["yes", "no"]
    return list(RELATIONS) if task == "spatial" else list(COLOURS)


# Chance accuracy, 1 / number of possible answers: what one answer given to every benchmark item scores.
CHANCE = {benchmark: 1 / len(answers(benchmark)) for benchmark in BENCHMARKS}
DESCRIBE = "Describe the image ."


@dataclasses.dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str
    row: int
    col: int
    dx: float = 0.0  # jitter of the centre, in cells
    dy: float = 0.0

    @property
    def category(self) -> tuple[str, str]:
        return (self.colour, self.shape)

    @property
    def super_category(self) -> str:
        return SHAPES[self.shape]


@dataclasses.dataclass(frozen=True)
class Scene:
    """Objects on a grid x grid board; `marked` is the index of the object drawn inside a box."""

    objects: tuple[SceneObject, ...]
    grid: int = 4
    marked: int | None = None

    def count(self, category: tuple[str, str]) -> int:
        return sum(o.category == category for o in self.objects)

    def categories(self) -> set[tuple[str, str]]:
        return {o.category for o in self.objects}

    def object_box(self, index: int, resolution: int) -> tuple[int, int, int, int]:
        """The box drawn around object `index` (pixels, x0 y0 x1 y1, exclusive ends), inside its cell."""
        obj, cell = self.objects[index], resolution / self.grid
        half = SIZES[obj.size] * cell / 2 + max(1.0, cell / 7)
        cx, cy = (obj.col + 0.5 + obj.dx) * cell, (obj.row + 0.5 + obj.dy) * cell
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(resolution, round(cx + half) + 1), min(resolution, round(cy + half) + 1)
        return x0, y0, x1, y1

    def render(self, resolution: int = 56) -> Image.Image:
        """Draw the scene at `resolution` pixels a side; the marked object gets a white box."""
        image = Image.new("RGB", (resolution, resolution), BACKGROUND)
        draw = ImageDraw.Draw(image)
        cell = resolution / self.grid
        for obj in self.objects:
            side = SIZES[obj.size] * cell
            cx, cy = (obj.col + 0.5 + obj.dx) * cell, (obj.row + 0.5 + obj.dy) * cell
            x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
            fill = COLOURS[obj.colour]
            if obj.shape == "circle":
                draw.ellipse((x0, y0, x1, y1), fill=fill)
            elif obj.shape == "ellipse":
                draw.ellipse((x0, cy - side / 4, x1, cy + side / 4), fill=fill)
            elif obj.shape == "square":
                draw.rectangle((x0, y0, x1, y1), fill=fill)
            else:
                draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
        if self.marked is not None:
            x0, y0, x1, y1 = self.object_box(self.marked, resolution)
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=max(1, resolution // 28))
        return image

    def describe(self) -> str:
        """The scene as text, in reading order: what the text-only language model is pretrained on."""
        parts = []
        for i in sorted(range(len(self.objects)), key=lambda i: (self.objects[i].row, self.objects[i].col)):
            obj = self.objects[i]
            boxed = "boxed " if i == self.marked else ""
            parts.append(f"{boxed}{obj.colour} {obj.shape} at {obj.row} {obj.col}")
        return (" , ".join(parts) or "nothing") + " ."

    def cell_labels(self) -> list[tuple[int, int, int]]:
        """Per cell in raster order: (colour index + 1, shape index + 1, boxed), zeros where empty."""
        labels = [(0, 0, 0)] * (self.grid * self.grid)
        colours, shapes = list(COLOURS), list(SHAPES)
        for i, obj in enumerate(self.objects):
            labels[obj.row * self.grid + obj.col] = (
                colours.index(obj.colour) + 1,
                shapes.index(obj.shape) + 1,
                int(i == self.marked),
            )
        return labels


@dataclasses.dataclass(frozen=True)
class Item:
    """One question about one scene. `box` is the marked object's (or the queried object's) index."""

    scene: Scene
    question: str
    answer: str
    task: str
    box_object: int | None = None


def vocabulary() -> list[str]:
    """Every word the scenes and questions use, in a fixed order (the zoo's tokenizer vocabulary)."""
    words = [*COLOURS, *SHAPES, *PLURALS.values(), *SIZES, *dict.fromkeys(SHAPES.values()), *RELATIONS]
    words += [
        "yes",
        "no",
        "at",
        "boxed",
        "nothing",
        "things",
        "these",
        "of",
        "How",
        "many",
        "are",
        "there",
        "Is",
        "a",
        "in",
        "the",
        "image",
    ]
    words += ["What", "colour", "is", "object", "box", "Where", "relative", "to", "Describe"]
    return list(dict.fromkeys(words))


def _category(rng: random.Random, exclude: Collection[tuple[str, str]] = frozenset()) -> tuple[str, str]:
    choices = [(c, w) for c, w in zip(CATEGORIES, CATEGORY_WEIGHTS, strict=True) if c not in exclude]
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def make_scene(
    rng: random.Random,
    fixed: list[tuple[str, str]],
    n_distractors: int,
    grid: int = 4,
    exclude: Collection[tuple[str, str]] = frozenset(),
) -> tuple[Scene, list[int]]:
    """Place the `fixed` categories plus distractors (never of an `exclude` category) in random cells.

    Returns the scene (objects shuffled) and the indices the fixed objects ended up at.
    """
    cells = rng.sample(range(grid * grid), min(grid * grid, len(fixed) + n_distractors))
    cats = list(fixed)
    while len(cats) < len(cells):
        cats.append(
            _near_category(rng, fixed, exclude) if fixed and rng.random() < 0.5 else _category(rng, exclude)
        )
    objects = []
    for cell, (colour, shape) in zip(cells, cats, strict=True):
        size = rng.choice(list(SIZES))
        slack = (1 - SIZES[size]) / 2 - 0.12
        objects.append(
            SceneObject(
                colour,
                shape,
                size,
                cell // grid,
                cell % grid,
                rng.uniform(-slack, slack),
                rng.uniform(-slack, slack),
            )
        )
    order = list(range(len(objects)))
    rng.shuffle(order)
    shuffled = tuple(objects[i] for i in order)
    return Scene(shuffled, grid), [order.index(i) for i in range(len(fixed))]


def _near_category(
    rng: random.Random, fixed: list[tuple[str, str]], exclude: Collection[tuple[str, str]]
) -> tuple[str, str]:
    """A category sharing the colour or the shape of a fixed one: distractors that need binding."""
    colour, shape = rng.choice(fixed)
    near = [c for c in CATEGORIES if (c[0] == colour) != (c[1] == shape) and c not in exclude]
    return rng.choice(near) if near else _category(rng, exclude)


def _counting(rng: random.Random, grid: int, form: str) -> Item:
    target = _category(rng)
    k = rng.choice(COUNTS)
    n_distractors = rng.randint(1, min(3, grid * grid - k))
    scene, idx = make_scene(rng, [target] * k, n_distractors, grid, exclude={target})
    colour, shape = target
    if form == "object":
        return Item(scene, f"How many {colour} {PLURALS[shape]} are there ?", str(k), "count_object", idx[0])
    scene = dataclasses.replace(scene, marked=idx[0])
    if form == "general":
        return Item(scene, "How many of these are there ?", str(k), "count_general", idx[0])
    question = f"How many of these {SHAPES[shape]} things are there ?"
    return Item(scene, question, str(k), "count_super", idx[0])


def pope_negative(rng: random.Random, scene: Scene, kind: str) -> tuple[str, str]:
    """An absent category: random, the most popular absent ones, or one that shares an attribute."""
    present = scene.categories()
    absent = [c for c in CATEGORIES if c not in present]
    if kind == "popular":
        return rng.choice([c for c in POPULARITY if c not in present][:3])
    if kind == "adversarial":
        near = [c for c in absent if any(c[0] == p[0] or c[1] == p[1] for p in present)]
        return rng.choice(near or absent)
    return rng.choice(absent)


def _pope(rng: random.Random, grid: int, kind: str | None, positive: bool) -> Item:
    scene, _ = make_scene(rng, [], rng.randint(*POPE_OBJECTS), grid)
    if positive:
        index = rng.randrange(len(scene.objects))
        colour, shape = scene.objects[index].category
    else:
        index = None
        colour, shape = pope_negative(rng, scene, kind or rng.choice(POPE_NEGATIVES))
    task = "pope" if kind is None else f"pope_{kind}"
    return Item(
        scene, f"Is there a {colour} {shape} in the image ?", "yes" if positive else "no", task, index
    )


def _attribute(rng: random.Random, grid: int) -> Item:
    colour = rng.choice(list(COLOURS))
    target = (colour, rng.choice(list(SHAPES)))
    scene, idx = make_scene(rng, [target], rng.randint(1, 5), grid)
    scene = dataclasses.replace(scene, marked=idx[0])
    return Item(scene, "What colour is the object in the box ?", colour, "attribute", idx[0])


def _colour_of(rng: random.Random, grid: int) -> Item:
    """The colour of the object of a named shape, among 1-3 objects of distinct shapes."""
    shapes = rng.sample(list(SHAPES), rng.randint(1, 3))
    fixed = [(rng.choice(list(COLOURS)), shape) for shape in shapes]
    scene, idx = make_scene(rng, fixed, 0, grid)
    which = rng.randrange(len(fixed))
    colour, shape = fixed[which]
    return Item(scene, f"What colour is the {shape} ?", colour, "colour_of", idx[which])


def _spatial(rng: random.Random, grid: int) -> Item:
    """Where a named object lies relative to the boxed one, in the same row or column."""
    relation = rng.choice(RELATIONS)
    first = _category(rng)
    second = _category(rng, exclude={first})
    line, a, b = rng.randrange(grid), *sorted(rng.sample(range(grid), 2))
    # a < b: first is left of / above second when it sits at a.
    pos_first, pos_second = (a, b) if relation in ("left", "above") else (b, a)
    if relation in ("left", "right"):
        cells = [(line, pos_first), (line, pos_second)]
    else:
        cells = [(pos_first, line), (pos_second, line)]
    scene, idx = make_scene(
        rng, [first, second], rng.randint(*SPATIAL_DISTRACTORS), grid, exclude={first, second}
    )
    objects = list(scene.objects)
    # Move the two named objects to their cells, swapping out whatever stood there.
    for which, (row, col) in zip(idx, cells, strict=True):
        other = next((i for i, o in enumerate(objects) if (o.row, o.col) == (row, col)), None)
        if other is not None and other != which:
            objects[other] = dataclasses.replace(
                objects[other], row=objects[which].row, col=objects[which].col
            )
        objects[which] = dataclasses.replace(objects[which], row=row, col=col)
    scene = dataclasses.replace(scene, objects=tuple(objects), marked=idx[1])
    question = f"Where is the {first[0]} {first[1]} relative to the box ?"
    return Item(scene, question, relation, "spatial", idx[1])


def make_item(rng: random.Random, task: str, grid: int = 4, index: int = 0) -> Item:
    """One item of `task` (a training task or a benchmark name); POPE alternates yes and no by `index`."""
    if task.startswith("count_"):
        return _counting(rng, grid, task.removeprefix("count_"))
    if task == "pope" or task.startswith("pope_"):
        kind = None if task == "pope" else task.removeprefix("pope_")
        return _pope(rng, grid, kind, positive=index % 2 == 0)
    makers: dict[str, Callable[[random.Random, int], Item]] = {
        "attribute": _attribute,
        "spatial": _spatial,
        "colour_of": _colour_of,
    }
    if task not in makers:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS + AUX_TASKS + BENCHMARKS)}")
    return makers[task](rng, grid)


def make_items(seed: int | str, task: str, n: int, grid: int = 4) -> list[Item]:
    """`n` items of one task, their answers in turn (1, 2, 3, 4, 1, ...), as POPE does with yes and no.

    A model that gives one answer to everything then scores exactly chance, whichever answer it
    gives, so a benchmark measures what was learned rather than which guess a model happens to
    favour. Items are kept from the task's stream when their answer is the next one due; the stream
    depends only on (seed, task), so sets never overlap by accident.
    """
    rng = random.Random(f"{seed}-{task}")
    due, index = answers(task), 0
    items: list[Item] = []
    while len(items) < n:
        item = make_item(rng, task, grid, index)
        index += 1
        if item.answer == due[len(items) % len(due)]:
            items.append(item)
    return items


def make_mixture(
    seed: int | str,
    n: int,
    grid: int = 4,
    tasks: tuple[str, ...] = TASKS,
    weights: dict[str, int] | None = None,
) -> list[Item]:
    """`n` training items, tasks in turn, each task's stream seeded on its own.

    `weights` (task -> whole number, default 1 each) repeats a task within each turn, e.g.
    `{"pope": 2}` gives POPE twice the items of every other task.
    """
    weights = weights or {}
    unknown = set(weights) - set(tasks)
    if unknown:
        raise ValueError(f"mixture weights for unknown task(s) {', '.join(sorted(unknown))}")
    turn = [task for task in tasks for _ in range(int(weights.get(task, 1)))]
    rngs = {task: random.Random(f"{seed}-train-{task}") for task in tasks}
    seen = dict.fromkeys(tasks, 0)
    items = []
    for i in range(n):
        task = turn[i % len(turn)]
        items.append(make_item(rngs[task], task, grid, seen[task]))
        seen[task] += 1
    return items
