"""Honest prose: every number a lecture's text quotes comes from that lecture's run; learner text has no internal names.

**Numbers.** For each executed lecture `notebooks/NN_*.ipynb`, every number in a markdown cell must be *backed* by
the notebook itself: by a number in a code cell (comments do not count: a comment is prose too) or in an output
(`text/plain`, stream text, and the course's result MIME `application/vnd.mmcourse.result+json`).

How prose numbers are read (`prose_numbers`):
- decimals and integers, with a space, thin space or comma as thousands separator ("1 300", "2 500", "20,000");
- scientific notation: "1e-9", "3 × 10⁻⁴", "10⁻⁴";
- percentages: "98.2 %" and "98.2%" stand for 0.982 (and for 98.2 in an output printed in percent);
- multipliers: "400 million", "0.25 M" (also read as the bare number);
- ratios: in "2/4" each number must be backed, or else the ratio's value (0.5) must be ("98 % / 77 %" is a list);
- signs are read ("−10") but not compared: backing compares absolute values.

The rounding rule: a prose number is backed by an output value x when x, rounded to the prose's digits, gives the
prose number: |x − prose| ≤ half a unit of the prose's last digit. So "74 %" is backed by 0.7404 or by 74.0 %,
"0.403" by 0.40312, "1e-9" by 1.3e-9 (the mantissa's digits), "1 300" by 1300 (or 1299.6). A ratio's value is
backed when it rounds to the printed x (the output has the fewer digits there).

Not checked (masked before reading):
- integers 0-12 written bare (counts a text could spell in words: "3 layers", "8 colours"), not "5 %" or "0.5";
- LaTeX (`$…$`, `$$…$$`): a formula states a definition, not a measurement; its constants are part of it;
- inline code and fenced code: they name code (paths, calls, identifiers), they do not report results;
- link targets, URLs and HTML tags;
- years next to author names ("Radford et al., 2021", "Yuksekgonul et al. (2023)", "Lin, 2004");
- chapter and section references ("chapter 03", "chapters 04–05", "sections 7, 10"), heading numbers ("## 4."),
  numbered-list markers;
- numbers inside names: "BLEU-4", "R@1", "MRR@10", "ViT-B/32", "log10", "#3", versions "3.11.7";
- the per-notebook ALLOW_LIST below: a short list of constants that come from papers or other software, not from
  this notebook's run, each with its reason. Never a measured claim: a claim must be printed by the notebook.

**Internal names.** Learner-facing text — markdown, code comments and string literals of `notebooks/` and
`solutions/`, and every string in `mmcourse/grading/checks/*.py` (hints, messages, mutant docstrings that the
grader quotes) — never names the project's internals: "the seed" as a document ("the seed's snippet", "(the seed)",
"seed bug", "seed MRR"), issue or pull-request numbers, the design file, tool names. "seed" as in a random seed
("seed=0", "seeds 0-4", "the seed still matters") is fine. See INTERNAL_NAMES.
"""

from __future__ import annotations

import ast
import bisect
import io
import json
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RESULT_MIME = "application/vnd.mmcourse.result+json"

# Constants the prose may quote without the notebook printing them: facts of papers and other software. Keys are
# the number as written (bare, or with "%"), or a short phrase around it ("log 100"), which allows it only there.
ALLOW_LIST: dict[str, dict[str, str]] = {
    "00_landscape": {},
    "01_attention_vit": {},
    "02_clip": {
        "49407": "the <eot> id of OpenAI's CLIP vocabulary, a fact about their tokenizer",
    },
    "03_metrics": {},
    "04_blip": {},  # its "−100" (PyTorch's ignore_index) is backed by the printed "recovers 100%" today
    "06_unclip": {
        "1e-4": "where Ho et al.'s (2020) linear schedule starts, a fact of the paper",
        "0.008": "the offset s of Nichol & Dhariwal's (2021) cosine schedule, a fact of the paper",
    },
    "07_audio_visual": {},
    "08_video": {
        "Jégou et al., 2011": "a citation's year (the accented name escapes the citation pattern)",
    },
    "11_scaling": {
        "32 768": "the batch size of OpenAI's CLIP training (Radford et al., 2021), a fact of the paper",
    },
    "09_fusion": {},
    "10_training_strategies": {
        "CVPR 2022": "the venue and year of the OGM-GE paper (Peng et al.), a citation",
    },
}

SMALL_INTEGERS = 12  # bare integers up to this are counts a sentence could spell in words

# ------------------------------------------------------------------------------------------------ reading numbers
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SEP = "[ \u2009\u202f\u00a0]"  # a space, thin space, narrow no-break space or no-break space between digit groups

_PROSE_NUMBER = re.compile(
    r"(?<![\w.@#^])(?<![^\d\s]/)"  # not inside an identifier (log10), a name (R@1, ViT-B/32), a reference (#3)
    r"(?<![A-Za-z][-‐])"  # nor after a hyphen joined to a word (BLEU-4, top-5)
    r"(?P<sign>(?<![\w)])[-−](?=\d))?"
    rf"(?P<int>\d{{1,3}}(?:{_SEP}\d{{3}})+(?!\d)|\d{{1,3}}(?:,\d{{3}})+(?![\d,])|\d+)"
    r"(?:\.(?P<frac>\d+))?"
    r"(?:[eE](?P<exp>[-+−]?\d+))?"
    r"(?P<supexp>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)?"
    r"(?:\s*[×·]\s*10(?P<timesexp>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))?"
    r"(?P<pct>\s?%)?"
    r"(?P<mult>\s(?:million|billion)\b|\s?M\b|k\b)?"
    r"(?![.,]\d)"  # "3.11.7" is a version, not 3.11 then 7
)
_MULTIPLIER = {"million": 1e6, "billion": 1e9, "M": 1e6, "k": 1e3}


@dataclass
class Number:
    """One number of the prose: where it is, how it reads, and the values (with tolerances) that would back it."""

    text: str
    start: int
    end: int
    exempt: bool  # a bare small integer
    alternatives: list[tuple[float, float]]  # (value, tolerance): backed when an output lies within tolerance

    @property
    def key(self) -> str:
        """The number as the allow-list writes it: digits without separators, '%' when a percentage."""
        digits = re.sub(r"[\s\u2009\u202f\u00a0,]", "", self.text)
        return digits.replace("−", "-")


def _value(m: re.Match) -> list[tuple[float, float]]:
    """The readings of one matched number: (value, half a unit of its last digit)."""
    whole = re.sub(rf"{_SEP}|,", "", m["int"])
    frac = m["frac"] or ""
    mantissa = float(f"{whole}.{frac}" if frac else whole)
    tol = 0.5 * 10.0 ** -len(frac)
    exp = m["exp"] or m["timesexp"]
    if m["supexp"] and whole == "10" and not frac:  # 10⁻⁴: a power of ten, read as 1e-4
        mantissa, exp = 1.0, m["supexp"]
    if exp:
        scale = 10.0 ** int(exp.translate(_SUPERSCRIPT).replace("−", "-"))
        mantissa, tol = mantissa * scale, tol * scale
    readings = [(mantissa, tol)]
    if m["pct"]:
        readings.append((mantissa / 100, tol / 100))
    if m["mult"]:
        factor = _MULTIPLIER[m["mult"].strip()]
        readings.append((mantissa * factor, tol * factor))
    return readings


def _mask(text: str, pattern: str, flags: int = 0, group: int = 0) -> str:
    """`text` with every match of `pattern` (or its `group`) blanked out, positions kept."""
    def blank(m):
        a, b = m.span(group)
        s, e = m.span()
        return m.group()[: a - s] + "\x00" * (b - a) + m.group()[b - s:]

    return re.sub(pattern, blank, text, flags=flags)


# "Lin, 2004", "Radford et al., 2021", "Yuksekgonul et al. (2023)": a name, then a comma or a parenthesis
_YEAR_AFTER_NAME = r"[A-Z][a-z][\w'-]*(?:\s+et al\.?)?(?:,\s*|\s*\()((?:19|20)\d\d)\b"
_REFERENCE = r"\b(?:chapters?|sections?|§)[\s-]*(\d+(?:\s*(?:,|–|-|—|and|or|&|to)\s*\d+)*)"


def masked_prose(markdown: str) -> str:
    """The markdown with everything that is not a quoted number blanked out (same length, same positions)."""
    text = _mask(markdown, r"\$\$.*?\$\$", re.S)  # display maths
    text = _mask(text, r"(?<![\\$])\$[^$\n]+\$")  # inline maths
    text = _mask(text, r"```.*?```", re.S)
    text = _mask(text, r"`[^`\n]*`")
    text = _mask(text, r"\]\([^)\s]*\)")  # link targets
    text = _mask(text, r"https?://\S+|<[^>\n]+>")
    text = _mask(text, r"\d+(?:\.\d+){2,}")  # versions
    text = _mask(text, _YEAR_AFTER_NAME, group=1)
    text = re.sub(_REFERENCE, lambda m: "\x00" * len(m.group()), text, flags=re.I)
    text = _mask(text, r"^#{1,6}\s+(\d+(?:\.\d+)*\.?)", re.M, group=1)  # "## 4. The ..." and "# 00 · Title"
    text = _mask(text, r"^\s*(\d+)[.)]\s", re.M, group=1)  # numbered-list markers
    return text


def prose_numbers(markdown: str) -> list[Number]:
    """Every number the markdown quotes, with the readings that would back it (ratios: see `_ratio_pairs`)."""
    found = []
    for m in _PROSE_NUMBER.finditer(masked_prose(markdown)):
        bare = not (m["frac"] or m["exp"] or m["supexp"] or m["timesexp"] or m["pct"] or m["mult"])
        exempt = bare and int(re.sub(rf"{_SEP}|,", "", m["int"])) <= SMALL_INTEGERS
        text = markdown[m.start():m.end()].strip()
        found.append(Number(text, m.start(), m.end(), exempt, _value(m)))
    return found


def _ratio_pairs(markdown: str, numbers: list[Number]) -> dict[int, float]:
    """For "a/b" in the prose: the index of a and of b -> the ratio's value. Percentages are never a ratio's terms
    ("98 % / 77 %" lists two accuracies)."""
    ratios = {}
    for i in range(len(numbers) - 1):
        a, b = numbers[i], numbers[i + 1]
        plain = len(a.alternatives) == len(b.alternatives) == 1
        if plain and re.fullmatch(r"\s*/\s*", markdown[a.end:b.start]) and b.alternatives[0][0] != 0:
            ratios[i] = ratios[i + 1] = a.alternatives[0][0] / b.alternatives[0][0]
    return ratios


# ------------------------------------------------------------------------------------------------ backing numbers
_PLAIN = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class Backing:
    """The numbers a notebook's code and outputs contain, as absolute values with their printed precision."""

    def __init__(self, texts: list[str]):
        found: list[tuple[float, float]] = []
        for text in texts:
            found += self._read(text)
        found.sort()
        self.values = [v for v, _ in found]
        self.tolerances = [t for _, t in found]

    @staticmethod
    def _read(text: str) -> list[tuple[float, float]]:
        """Generous on purpose (a larger backing set can only excuse, never accuse): every digit run, joined
        thousands groups ("28,084", "20 000", "5_000") both joined and apart, percentages also as fractions,
        "M"/"million"/"k" also multiplied out, "10⁻⁴" as a power of ten."""
        out = []
        matches = list(_PLAIN.finditer(text))
        for m in matches:
            s = m.group()
            mantissa = s.split("e")[0].split("E")[0]
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            v = abs(float(s))
            tol = 0.5 * 10.0 ** -decimals * (v / float(mantissa) if float(mantissa) else 1.0)
            out.append((v, tol))
            after = text[m.end():m.end() + 9]
            if re.match(r"\s?%", after):
                out.append((v / 100, tol / 100))
            mult = re.match(r"\s?(million|billion|M|k)\b", after)
            if mult:
                out.append((v * _MULTIPLIER[mult.group(1)], tol * _MULTIPLIER[mult.group(1)]))
            sup = re.match(r"[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+", after)
            if s == "10" and sup:
                out.append((10.0 ** int(sup.group().translate(_SUPERSCRIPT)), 0.0))
        for m in re.finditer(rf"(?<![\d.])\d{{1,3}}(?:(?:[,_]|{_SEP})\d{{3}})+(?:\.(\d+))?(?![\d])", text):
            out.append((float(re.sub(rf"[,_]|{_SEP}", "", m.group())), 0.5 * 10.0 ** -len(m.group(1) or "")))
        return out

    def backs(self, value: float, tol: float) -> bool:
        """True when some number x here rounds to `value` at the prose's precision: |x − value| ≤ tol."""
        value = abs(value)
        slack = tol * (1 + 1e-9) + 1e-12 * value  # a relative hair for float noise, never an absolute one
        i = bisect.bisect_left(self.values, value - slack)
        return i < len(self.values) and self.values[i] <= value + slack

    def backs_ratio(self, ratio: float) -> bool:
        """True when some printed x is the ratio rounded to x's own digits (x an integer only if the ratio is one:
        every ratio rounds to some integer)."""
        ratio = abs(ratio)
        i = bisect.bisect_left(self.values, ratio - 0.5)
        while i < len(self.values) and self.values[i] <= ratio + 0.5:
            tol = self.tolerances[i] if self.tolerances[i] < 0.5 else 0.0
            if abs(self.values[i] - ratio) <= tol * (1 + 1e-9) + 1e-12 * ratio:
                return True
            i += 1
        return False


def code_without_comments(source: str) -> str:
    """A code cell's text minus its comments (a comment is prose; it cannot back a number)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return re.sub(r"#[^\n]*", "", source)
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)


def backing_texts(nb) -> list[str]:
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts.append(code_without_comments(cell.source))
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            data = out.get("data", {})
            if "text/plain" in data:
                texts.append(data["text/plain"])
            if RESULT_MIME in data:
                texts.append(json.dumps(data[RESULT_MIME]))
    return texts


# ------------------------------------------------------------------------------------------------ the check
def _sentence(text: str, start: int, end: int, width: int = 110) -> str:
    """The sentence around text[start:end], on one line, the number marked »…«, cut to about `width` each side."""
    breaks = [m.end() for m in re.finditer(r"[.!?:;]\s|\n\s*\n|\n\s*[-*]\s|^#+ ", text[:start], flags=re.M)]
    a = max(breaks[-1] if breaks else 0, start - width)
    m = re.search(r"[.!?;](\s|$)|\n\s*\n|\n\s*[-*]\s", text[end:])
    b = min(end + (m.start() + 1 if m else len(text) - end), end + width)
    show = f"{text[a:start]}»{text[start:end]}«{text[end:b]}"
    return re.sub(r"\s+", " ", show).strip()


def _allowed(stem: str, markdown: str, number: Number) -> bool:
    for key in ALLOW_LIST.get(stem, {}):
        if re.fullmatch(r"-?\d+(?:\.\d+)?%?", key):
            if number.key == key:
                return True
            continue
        pattern = r"\s*".join(map(re.escape, key.split()))
        if any(m.start() <= number.start and number.end <= m.end() for m in re.finditer(pattern, markdown)):
            return True
    return False


def unbacked_numbers(ipynb: Path) -> list[tuple[int, str, str]]:
    """(cell index, number, sentence) for every number in the lecture's markdown that nothing in it backs."""
    nb = nbformat.read(ipynb, as_version=4)
    backing = Backing(backing_texts(nb))
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        numbers = prose_numbers(cell.source)
        ratios = _ratio_pairs(cell.source, numbers)
        for i, number in enumerate(numbers):
            if number.exempt or _allowed(ipynb.stem, cell.source, number):
                continue
            if any(backing.backs(v, tol) for v, tol in number.alternatives):
                continue
            if i in ratios and backing.backs_ratio(ratios[i]):
                continue
            problems.append((index, number.text, _sentence(cell.source, number.start, number.end)))
    return problems


@pytest.mark.parametrize("ipynb", LECTURES, ids=[p.stem for p in LECTURES])
def test_every_number_in_the_prose_comes_from_the_run(ipynb):
    problems = unbacked_numbers(ipynb)
    lines = [f"  cell {i}: {n!r} in “{s}”" for i, n, s in problems]
    assert not problems, (
        f"{ipynb.name}: {len(problems)} number(s) in the text appear nowhere in the notebook's code or outputs "
        "(print the number, or correct the text; constants from papers go in ALLOW_LIST with a reason):\n"
        + "\n".join(lines))


def test_allow_list_is_short_has_reasons_and_every_entry_is_needed():
    stems = {p.stem for p in LECTURES}
    for stem, entries in ALLOW_LIST.items():
        assert stem in stems, f"ALLOW_LIST names {stem}, which is no lecture"
        assert len(entries) <= 5, f"{stem}: the allow-list is for a few constants, not for claims"
        for key, reason in entries.items():
            assert len(reason.split()) >= 4, f"{stem}: allow-list entry {key!r} needs its reason"
        ipynb = ROOT / "notebooks" / f"{stem}.ipynb"
        saved = ALLOW_LIST[stem]
        try:
            for key in saved:  # an entry that excuses nothing (the number is gone, or printed now) must go
                ALLOW_LIST[stem] = {k: v for k, v in saved.items() if k != key}
                assert len(unbacked_numbers(ipynb)) > len(_unbacked_with(ipynb, saved)), (
                    f"{stem}: allow-list entry {key!r} excuses no number any more: remove it")
        finally:
            ALLOW_LIST[stem] = saved


def _unbacked_with(ipynb: Path, entries: dict[str, str]) -> list:
    saved = ALLOW_LIST[ipynb.stem]
    ALLOW_LIST[ipynb.stem] = entries
    try:
        return unbacked_numbers(ipynb)
    finally:
        ALLOW_LIST[ipynb.stem] = saved


@pytest.mark.parametrize("text, expected", [
    ("zero-shot 98.2 % after 1 300 steps", [("98.2%", [0.982]), ("1300", [1300])]),
    ("a loss of 1e-9, or ≈ 10⁻⁴, or 3 × 10⁻⁴", [("1e-9", [1e-9]), ("10⁻⁴", [1e-4]), ("3×10⁻⁴", [3e-4])]),
    ("2 500 texts, 20,000 images, 400 million pairs", [("2500", [2500]), ("20000", [20000]), ("400million", [4e8])]),
    ("R@1 = 20/40, MRR@10 and BLEU-4 of ViT-B/32; log10; #3; python 3.11.7", [("20", None), ("40", None)]),
    ("(Radford et al., 2021) and Yuksekgonul et al. (2023) in chapter 03, sections 7, 10, chapters 04–05", []),
    ("After 2000 steps, in 2021 runs", [("2000", [2000]), ("2021", [2021])]),  # a year needs a name before it
    ("the formula $e^{0.07 x}$ and `lr=5e-3` and [link](https://x.org/2021)", []),
    ("## 4. Results\n1. first: 74 % and −20; 3 layers, 8 colours", [("74%", [0.74]), ("-20", None)]),
])
def test_prose_numbers_reads_what_the_text_quotes(text, expected):
    found = [n for n in prose_numbers(text) if not n.exempt]
    got = [(n.key.replace(" ", ""), sorted(v for v, _ in n.alternatives)) for n in found]
    assert [k for k, _ in got] == [k for k, _ in expected], got
    for (_, values), (_, want) in zip(got, expected):
        if want:
            assert any(abs(v - w) <= 1e-9 * abs(w) for v in values for w in want), (values, want)


def test_rounding_rule_prose_is_the_output_rounded_to_the_prose_digits():
    backing = Backing(["accuracy 0.7404", "held-out 99.85%", "loss 1.3e-09", "R@1 0.50", "took 1,299.6 s"])
    (pct,) = prose_numbers("74 %")
    assert any(backing.backs(v, t) for v, t in pct.alternatives)
    (pct,) = prose_numbers("99.8 %")  # 0.9985 rounds to 0.998 or 0.999 (a tie): either is honest
    assert any(backing.backs(v, t) for v, t in pct.alternatives)
    (pct,) = prose_numbers("99.7 %")
    assert not any(backing.backs(v, t) for v, t in pct.alternatives)
    (close,) = prose_numbers("0.740")
    assert any(backing.backs(v, t) for v, t in close.alternatives)
    (off,) = prose_numbers("0.741")
    assert not any(backing.backs(v, t) for v, t in off.alternatives)
    (tiny,) = prose_numbers("1e-9")
    assert any(backing.backs(v, t) for v, t in tiny.alternatives)
    (thousands,) = prose_numbers("1 300 s")
    assert any(backing.backs(v, t) for v, t in thousands.alternatives)
    assert backing.backs_ratio(2 / 4) and not backing.backs_ratio(2 / 3)


def test_comments_do_not_back_numbers():
    assert "4242" not in code_without_comments("x = 1  # 4242 from the text\n")
    assert "4242" in code_without_comments("print('4242')\n")


# ------------------------------------------------------------------------------------------------ internal names
INTERNAL_NAMES = re.compile("|".join([
    r"\bthe seed['’]s\b",  # "the seed's snippet"
    r"\bseed['’]s\s+(?:snippets?|code|bugs?|guide|text|version|loss|formula|implementation|notebook|example)",
    r"\(\s*the seed\s*\)",  # "(the seed)"
    r"\bseed[-_ ](?:bugs?|snippets?|style|guide|code|notebook|text|document|file|version|mrr|list)\b",
    r"\bthe seed\s+(?:says|said|writes|wrote|uses|used|computes|computed|claims|suggests|recommends|describes"
    r"|lists|shows|gives|has|had|does|did|divides|pools|picks|feeds|averages|scores|calls|code|snippets?|text"
    r"|guide|notebook|version|document|file)\b",  # the seed as a document that acts
    r"\b(?:in|like|unlike|than|per|from|as) the seed\b(?!\s*(?:=|\d|value|stream|generator|changes|for\b))",
    r"\bissues?\s*#?\s*\d+", r"\bbug\s*#\s*\d+", r"\bpull request\b", r"\bPR\s*#\s*\d+",
    r"\bCOURSE\.md\b", r"\bshared/seed\b", r"\b000_6e2d", r"\bClaude\b", r"\bthe brief\b(?!\s+(?:moment|look|pause))",
]), re.I)


def learner_texts_of_notebook(ipynb: Path) -> list[tuple[str, str]]:
    """(where, text) of a notebook's markdown cells, code comments and string literals, and the names it defines or
    calls that mention a seed (a learner reads the code too)."""
    nb = nbformat.read(ipynb, as_version=4)
    texts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            texts.append((f"cell {i} (markdown)", cell.source))
            continue
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(cell.source).readline))
        except (tokenize.TokenError, IndentationError, SyntaxError):
            texts.append((f"cell {i} (code)", cell.source))
            continue
        texts += [(f"cell {i} (code, line {t.start[0]})", t.string) for t in tokens
                  if t.type in (tokenize.COMMENT, tokenize.STRING)]
        texts += [(f"cell {i} (code, line {t.start[0]}, a name)", t.string.replace("_", " ")) for t in tokens
                  if t.type == tokenize.NAME and "seed" in t.string.lower()]  # seed_style_mrr: "seed style mrr"
    return texts


def learner_texts_of_checks(py: Path) -> list[tuple[str, str]]:
    """(where, text) of every string in a check module: hints, messages, docstrings the grader quotes."""
    tree = ast.parse(py.read_text(encoding="utf-8"))
    return [(f"line {node.lineno}", node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


LEARNER_FILES = (sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                 + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
                 + sorted((ROOT / "mmcourse" / "grading" / "checks").glob("ch[0-9][0-9].py")))


def internal_names(path: Path) -> list[tuple[str, str, str]]:
    """(where, phrase, context) for each internal name in a learner-facing file."""
    texts = learner_texts_of_checks(path) if path.suffix == ".py" else learner_texts_of_notebook(path)
    return [(where, m.group(), _sentence(text, m.start(), m.end(), width=70))
            for where, text in texts for m in INTERNAL_NAMES.finditer(text)]


@pytest.mark.parametrize("path", LEARNER_FILES, ids=[f"{p.parent.name}/{p.name}" for p in LEARNER_FILES])
def test_learner_text_has_no_internal_names(path):
    found = internal_names(path)
    assert not found, (f"{path.relative_to(ROOT)}: internal names in learner-facing text (say 'the study guide' or "
                       "'a snippet you will meet in tutorials'):\n"
                       + "\n".join(f"  {w}: {p!r} in “{c}”" for w, p, c in found))


@pytest.mark.parametrize("text", [
    "as the seed's snippet does", "the pooling (the seed) uses", "seed bug #3", "The seed divides by 0.07",
    "a 'seed MRR' column", "def seed_style_mrr".replace("_", " "), "fixed in issue 11", "see issue #4",
    "unlike the seed, we pool at <eot>", "COURSE.md says",
])
def test_internal_name_pattern_catches(text):
    assert INTERNAL_NAMES.search(text), text


@pytest.mark.parametrize("text", [
    "generated on the spot from a seed", "seed=0", "seeds 0-3, one thread", "the seed still matters for them",
    "a generator per seed and stream name", "every draw comes from make_generator(seed, stream)",
    "a different seed changes the numbers", "run with the seed 0", "from the seed = 3 run", "manual seed(0)",
    "the study guide's snippet", "a 300-image corpus of the world (seed 3)", "seed everything(0)",
])
def test_internal_name_pattern_spares_random_seeds(text):
    assert not INTERNAL_NAMES.search(text), INTERNAL_NAMES.search(text)
