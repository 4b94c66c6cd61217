"""The course in docs/ runs: every ```python block of a chapter is executed, in order, in one
namespace per chapter (a fresh working directory each), and where an ```output block follows a
python block the printed output must match it. ```bash blocks are commands to run outside the
tests (minutes of training, benchmarks): each `tinyllm ...` line must parse with the real
command-line parser and each `python FILE` must name a file of the repository.

How an output block is matched, line by line (trailing spaces ignored):
- a line that is only `...` matches any number of lines, and `...` inside a line any text:
  the mark for timings and other values that depend on the machine;
- a number with a decimal point matches a printed number within 1% or one unit of its last
  digit (BLAS and thread counts change the last digits of float sums); integers must be equal;
- everything else must be equal.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tinyllm.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def fenced_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """Return (language, code, first line number, end offset) of each fenced block."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.end()) for m in FENCE.finditer(text)]


def steps(text: str) -> list[tuple[str, str | None, int]]:
    """Return (python code, expected output or None, line) in document order."""
    blocks = fenced_blocks(text)
    found = []
    for index, (language, code, line, end) in enumerate(blocks):
        if language != "python":
            continue
        expected = None
        if index + 1 < len(blocks) and blocks[index + 1][0] == "output":
            start_of_next = FENCE.search(text, end).start()
            if text[end:start_of_next].strip() == "":
                expected = blocks[index + 1][1]
        found.append((code, expected, line))
    return found


def _decimals(number: str) -> int:
    mantissa = number.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def line_matches(expected: str, actual: str) -> bool:
    """Return whether one actual line matches one expected line (see the module docstring)."""
    pattern, numbers, position = "", [], 0
    for token in re.finditer(r"\.\.\.|" + NUMBER.pattern, expected):
        pattern += re.escape(expected[position : token.start()])
        if token.group() == "...":
            pattern += ".*?"
        else:
            pattern += f"({NUMBER.pattern})"
            numbers.append(token.group())
        position = token.end()
    match = re.fullmatch(pattern + re.escape(expected[position:]), actual)
    if match is None:
        return False
    for want, got in zip(numbers, match.groups()):
        if "." not in want and "e" not in want.lower():
            if want != got:
                return False
            continue
        tolerance = max(0.01 * abs(float(want)), 10.0 ** -_decimals(want))
        if abs(float(got) - float(want)) > tolerance * 1.0001:
            return False
    return True


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Return whether the actual lines match the expected lines, `...` lines matching any run."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(output_matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and line_matches(expected[0], actual[0]) and output_matches(expected[1:], actual[1:])


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.rstrip().splitlines()]
    return lines


def run_chapter(path: Path) -> list[tuple[int, str | None, str]]:
    """Execute a chapter's python blocks; return (line, expected, actual output) of each."""
    namespace = {"__name__": "__docs__"}
    results = []
    for code, expected, line in steps(path.read_text()):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)  # noqa: S102 - the course's own code
        results.append((line, expected, buffer.getvalue()))
    return results


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_and_prints_what_it_shows(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line, expected, actual in run_chapter(path):
        if expected is not None:
            assert output_matches(_lines(expected), _lines(actual)), (
                f"{path.name}:{line}: printed output differs from the text\n--- shown:\n{expected}--- printed:\n{actual}"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_commands_are_valid(path):
    for language, code, line, _ in fenced_blocks(path.read_text()):
        if language not in ("bash", "sh", "console"):
            continue
        for command in code.splitlines():
            command = command.split(" #")[0].strip()
            if command.startswith("tinyllm "):
                words = shlex.split(command)[1:]
                try:  # the parser of the command named, complete (the others are one-line stubs)
                    build_parser(words[0] if words else None).parse_args(words)
                except SystemExit:
                    pytest.fail(f"{path.name}:{line}: `{command}` does not parse")
            elif command.startswith("python "):
                script = shlex.split(command)[1]
                if script != "-m":
                    assert (ROOT / script).is_file(), f"{path.name}:{line}: {script} does not exist"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_with_exercises_whose_answers_are_checked(path):
    text = path.read_text()
    exercises = text[text.index("## Exercises") :]
    answers = re.findall(r"<details>.*?</details>", exercises, re.S)
    assert answers, f"{path.name}: no <details> answers in the exercises"
    for answer in answers:
        assert re.search(r"```python\n.*?\bassert\b.*?```", answer, re.S), f"{path.name}: an answer without an assert"


def test_the_index_lists_every_chapter_and_every_picture_is_regenerated_and_small():
    index = (DOCS / "README.md").read_text()
    assert len(CHAPTERS) == 12
    for path in CHAPTERS:
        assert f"({path.name})" in index, f"docs/README.md does not link {path.name}"
    script = (ROOT / "scripts" / "make_figures.py").read_text()
    for path in [*CHAPTERS, DOCS / "README.md", ROOT / "README.md"]:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", path.read_text()):
            file = (path.parent / image).resolve()
            assert file.is_file(), f"{path.name} shows {image}, which does not exist"
            assert file.stat().st_size < 300_000, f"{image} is over 300 KB"
            if file.is_relative_to(DOCS):
                assert file.name in script, f"{image} is not written by scripts/make_figures.py"


@pytest.mark.parametrize(
    "expected, actual, matches",
    [
        ("loss 2.5123", "loss 2.5124", True),
        ("loss 2.5123", "loss 2.61", False),
        ("took ... ms", "took 12.7 ms", True),
        ("token id 42", "token id 43", False),
        ("0.858", "0.860", True),
        ("[1, 2]", "[1, 2, 3]", False),
    ],
)
def test_output_lines_are_matched_with_the_documented_tolerance(expected, actual, matches):
    assert line_matches(expected, actual) is matches


def test_an_ellipsis_line_matches_any_run_of_lines():
    assert output_matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert output_matches(["a", "...", "z"], ["a", "z"])
    assert not output_matches(["a", "...", "z"], ["a", "b"])
