"""The documentation quotes real code, and the quotes must stay true.

A quoted code block in ``docs/**/*.md`` is marked by an HTML comment on the line before its
fence, naming the repository file it comes from::

    <!-- quote: cpp/include/truesparse/layers.h -->
    ```cpp
    void forward(...) ...
    ```

For every marked block this test checks that its lines occur, as a consecutive sequence, in
the named file. Both sides are normalised the same way: trailing whitespace removed, then the
common indentation removed (of the block, and of each window of the file it is compared
with), so a method quoted without its class's indentation still matches.

It also checks that every repository path written in backticks in the per-layer pages
(``docs/layers/*.md``) and in ``docs/adding-a-layer.md`` exists, and that their relative
Markdown links point to existing files. The test reads files only; it needs neither the
compiled core nor NumPy.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

QUOTE_MARK = re.compile(r"^\s*<!--\s*quote:\s*(\S+)\s*-->\s*$")
FENCE = re.compile(r"^\s*(```+|~~~+)")
PATH_PREFIXES = ("cpp/", "python/", "validation/", "tests/", "bench/", "docs/")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _normalise(lines: list[str]) -> list[str]:
    """Trailing whitespace off every line, then the common indentation off all of them."""
    text = "\n".join(line.rstrip() for line in lines)
    return textwrap.dedent(text).split("\n")


def quoted_blocks() -> list[tuple[str, int, str, list[str]]]:
    """(doc path, line of the mark, quoted file, block lines) for every marked block."""
    blocks = []
    for doc in sorted(DOCS.rglob("*.md")):
        lines = doc.read_text(encoding="utf-8").split("\n")
        rel = doc.relative_to(ROOT).as_posix()
        i = 0
        while i < len(lines):
            mark = QUOTE_MARK.match(lines[i])
            if not mark:
                i += 1
                continue
            opening = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            assert opening, f"{rel}:{i + 1}: a quote mark must be followed by a code fence"
            fence = opening.group(1)
            end = i + 2
            while end < len(lines) and not lines[end].strip().startswith(fence):
                end += 1
            assert end < len(lines), f"{rel}:{i + 1}: the quoted block is not closed"
            blocks.append((rel, i + 1, mark.group(1), lines[i + 2 : end]))
            i = end + 1
    return blocks


def contains_lines(haystack: list[str], needle: list[str]) -> bool:
    """Whether ``needle`` (normalised) equals some normalised window of ``haystack``."""
    needle = _normalise(needle)
    stripped = [line.strip() for line in needle]
    n = len(needle)
    for start in range(len(haystack) - n + 1):
        window = haystack[start : start + n]
        if [line.strip() for line in window] != stripped:  # cheap filter first
            continue
        if _normalise(window) == needle:
            return True
    return False


BLOCKS = quoted_blocks()


def test_docs_contain_quoted_code():
    docs = {doc for doc, *_ in BLOCKS}
    assert "docs/adding-a-layer.md" in docs, "adding-a-layer.md quotes no marked code"
    assert any(doc.startswith("docs/layers/") for doc in docs), "docs/layers/ quotes no code"


@pytest.mark.parametrize(
    "doc, line, source, block",
    BLOCKS,
    ids=[f"{doc}:{line}" for doc, line, _, _ in BLOCKS],
)
def test_quoted_code_occurs_verbatim_in_its_file(doc, line, source, block):
    path = ROOT / source
    assert path.is_file(), f"{doc}:{line}: quoted file {source} does not exist"
    assert any(b.strip() for b in block), f"{doc}:{line}: the quoted block is empty"
    text = path.read_text(encoding="utf-8").split("\n")
    assert contains_lines(text, block), (
        f"{doc}:{line}: the quoted block no longer occurs in {source}; update the quote:\n"
        + "\n".join(block)
    )


def teaching_pages() -> list[Path]:
    return sorted((DOCS / "layers").glob("*.md")) + [DOCS / "adding-a-layer.md"]


def test_teaching_pages_exist():
    pages = teaching_pages()
    assert all(p.is_file() for p in pages)
    assert (DOCS / "layers" / "index.md").is_file()


def mentioned_paths(page: Path) -> list[str]:
    """Repository paths in backticks; templates (``<name>``, ``*``) and '::' suffixes aside."""
    paths = []
    for code in INLINE_CODE.findall(page.read_text(encoding="utf-8")):
        code = code.strip()
        if not code.startswith(PATH_PREFIXES) or " " in code:
            continue
        code = code.split("::")[0]
        if any(c in code for c in "<>*{}"):
            continue
        paths.append(code)
    return paths


@pytest.mark.parametrize("page", teaching_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_paths_in_backticks_exist(page):
    missing = [p for p in mentioned_paths(page) if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"{page.relative_to(ROOT)} mentions missing paths: {missing}"


@pytest.mark.parametrize("page", teaching_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    missing = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        file_part = target.split("#")[0]
        if file_part and not (page.parent / file_part).resolve().exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"
