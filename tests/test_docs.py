"""The documentation is self-contained, its links resolve, and the code it quotes is true.

**Quoted code.** A quoted code block in ``docs/**/*.md`` is marked by an HTML comment on the
line before its fence, naming the repository file it comes from::

    <!-- quote: cpp/include/truesparse/layers.h -->
    ```cpp
    void forward(...) ...
    ```

For every marked block this test checks that its lines occur, as a consecutive sequence, in
the named file. Both sides are normalised the same way: trailing whitespace removed, then the
common indentation removed (of the block, and of each window of the file it is compared
with), so a method quoted without its class's indentation still matches.

**Paths and links.** In every page of ``docs/`` (recursively) and in ``README.md``, outside
fenced code blocks:

- every repository path written in backticks exists (a path is a word whose first component
  is a top-level entry of the repository, or a word with a ``/`` and a file extension;
  templates such as ``<name>`` or ``*`` and ``::`` suffixes aside; ``build/`` is not part of
  the repository), and every bare source-file name (``linear.h``, ``model.py``) names a file
  somewhere in the repository;
- every relative Markdown link points to an existing file, and a link with a ``#fragment``
  to an existing heading of its target (GitHub's anchors: see :func:`slug`).

**Citations in code.** Every ``docs/<page>.md`` or ``docs/<page>.md#<anchor>`` written in a
comment or docstring under ``cpp/``, ``python/``, ``tests/``, ``validation/`` and ``bench/``
names an existing page and heading.

**No outside documents.** No file of the repository (outside ``.git`` and ``build``) mentions
the design documents that live outside it, and the documentation names no machine-specific
path.

The test reads files only; it needs neither the compiled core nor NumPy.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

QUOTE_MARK = re.compile(r"^\s*<!--\s*quote:\s*(\S+)\s*-->\s*$")
FENCE = re.compile(r"^\s*(```+|~~~+)")


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


# -- the pages ------------------------------------------------------------------------------------

README = ROOT / "README.md"
# Not part of the repository: version control, build trees, caches, local environments.
SKIP_DIRS = {
    ".git",
    "build",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".venv",
    "venv",
    ".tox",
}


def pages() -> list[Path]:
    """Every Markdown page of docs/ (recursively) and the README."""
    return sorted(DOCS.rglob("*.md")) + [README]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text without its fenced code blocks (their lines become empty, so numbers hold)."""
    out = []
    fence = None
    for line in text.split("\n"):
        stripped = line.strip()
        if fence is None:
            opening = FENCE.match(line)
            fence = opening.group(1) if opening else None
            out.append("" if opening else line)
        else:
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None  # a closing fence: as long as the opening one, nothing else
            out.append("")
    return "\n".join(out)


def test_pages_found():
    found = {_rel(p) for p in pages()}
    for page in ("README.md", "docs/index.md", "docs/layers/index.md", "docs/adding-a-layer.md"):
        assert page in found, f"{page} is missing"


# -- GitHub heading anchors ----------------------------------------------------------------------

HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
MD_LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lowercased, every character that is not
    a letter, a digit, a mark, ``-``, ``_`` or a space removed, then each space turned into ``-``.
    Inline code keeps its text; a link keeps its link text."""
    text = MD_LINK_TEXT.sub(r"\1", heading).lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (duplicates numbered -1, -2, ... as on GitHub), plus
    explicit ``<a name=...>`` / ``id=...`` anchors."""
    lines = prose(page.read_text(encoding="utf-8")).split("\n")
    seen: dict[str, int] = {}
    result = set()
    for i, line in enumerate(lines):
        result.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if m:
            text = m.group(2)
        elif (
            i > 0
            and SETEXT.match(line)
            and lines[i - 1].strip()
            and not HEADING.match(lines[i - 1])
        ):
            if set(line.strip()) == {"-"} and lines[i - 1].lstrip().startswith(("-", "*", "|")):
                continue  # a table rule or a list, not a heading
            text = lines[i - 1].strip()
        else:
            continue
        base = slug(text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("2. Data layout: feature-major", "2-data-layout-feature-major"),
        ("4. Memory per stored weight", "4-memory-per-stored-weight"),
        ("3. Applying a change", "3-applying-a-change"),
        ("4. Records and the ITOP rate", "4-records-and-the-itop-rate"),
        ("Validation ladder", "validation-ladder"),
        ("Ctrl-C", "ctrl-c"),
        ("`MLP`", "mlp"),
        ("`Sequential` and `truesparse.layers`", "sequential-and-truesparselayers"),
        (
            "Sparse layers: what is computed on the pattern",
            "sparse-layers-what-is-computed-on-the-pattern",
        ),
        ("Weight gradient: SDDMM", "weight-gradient-sddmm"),
        ("snake_case name", "snake_case-name"),
        ("[linked](other.md) heading", "linked-heading"),
    ],
)
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_duplicate_headings_are_numbered(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A\n\n## Tests\n\n```\n## not a heading\n```\n\n## Tests\n\nB\n---\n", "utf-8"
    )
    assert anchors(page) == {"a", "tests", "tests-1", "b"}


# -- paths in backticks --------------------------------------------------------------------------

INLINE_CODE = re.compile(r"`([^`\n]+)`")
FILE_EXTENSION = re.compile(r"\.(?:md|py|pyi|h|cpp|toml|txt|json|cfg|cmake|sh|yml|yaml)$")
SOURCE_FILE = re.compile(r"^[\w.+-]+\.(?:py|h|cpp)$")


def top_level_names() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.name not in SKIP_DIRS}


def repository_files() -> list[Path]:
    """Every file of the repository outside .git, build and caches."""
    files = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).parts
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel):
            continue
        if path.is_file():
            files.append(path)
    return files


FILE_NAMES = {p.name for p in repository_files()}


def mentioned_paths(page: Path) -> list[str]:
    """Repository paths in backticks (outside fenced code); templates and '::' suffixes aside."""
    top = top_level_names()
    paths = []
    for code in INLINE_CODE.findall(prose(page.read_text(encoding="utf-8"))):
        code = code.strip().split("::")[0]
        if not code or " " in code or any(c in code for c in "<>*{}$~"):
            continue
        first = code.split("/")[0]
        if first in top or ("/" in code and FILE_EXTENSION.search(code) and first != "build"):
            if not code.startswith(("/", "build/")):
                paths.append(code)
    return paths


def mentioned_file_names(page: Path) -> list[str]:
    """Bare source-file names in backticks (``linear.h``, ``model.py``)."""
    names = []
    for code in INLINE_CODE.findall(prose(page.read_text(encoding="utf-8"))):
        code = code.strip()
        if SOURCE_FILE.match(code):
            names.append(code)
    return names


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_paths_in_backticks_exist(page):
    missing = [p for p in mentioned_paths(page) if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"{_rel(page)} mentions missing paths: {missing}"


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_file_names_in_backticks_exist(page):
    missing = sorted({n for n in mentioned_file_names(page) if n not in FILE_NAMES})
    assert not missing, f"{_rel(page)} names files that exist nowhere in the repository: {missing}"


def test_path_detection(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "`cpp/include/truesparse/` `tests/test_docs.py::test_pages_found` `README.md` "
        "`examples/run.py` `build/bench/bench_mlp` `validation/test_<name>.py` `GFLOP/s` "
        "`--a/--b` `linear.h` `x = 1`\n\n```\n`python/in_a_fence.py`\n```\n",
        "utf-8",
    )
    assert mentioned_paths(page) == [
        "cpp/include/truesparse/",
        "tests/test_docs.py",
        "README.md",
        "examples/run.py",
    ]
    assert mentioned_file_names(page) == ["linear.h"]


# -- links ---------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def links(page: Path) -> list[str]:
    """Markdown link targets outside fenced code and inline code."""
    text = INLINE_CODE.sub("", prose(page.read_text(encoding="utf-8")))
    return LINK.findall(text)


def broken_link(page: Path, target: str) -> str | None:
    """Why a relative link of ``page`` is broken, or None (external links are not checked)."""
    if "://" in target or target.startswith("mailto:"):
        return None
    file_part, _, fragment = target.partition("#")
    path = (page.parent / file_part).resolve() if file_part else page
    if not path.exists():
        return f"{target}: no such file"
    try:
        path.relative_to(ROOT)
    except ValueError:
        return f"{target}: outside the repository"
    if fragment:
        if path.suffix != ".md":
            return f"{target}: a #fragment needs a Markdown target"
        if fragment not in anchors(path):
            return f"{target}: {_rel(path)} has no heading with the anchor #{fragment}"
    return None


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_relative_links_resolve(page):
    broken = [why for why in (broken_link(page, t) for t in links(page)) if why]
    assert not broken, f"{_rel(page)} has broken links:\n" + "\n".join(broken)


# -- citations of the docs in code ---------------------------------------------------------------

CODE_DIRS = ("cpp", "python", "tests", "validation", "bench")
CODE_SUFFIXES = {".h", ".hpp", ".cpp", ".py", ".pyi", ".md", ".txt", ".cmake", ".sh", ".toml"}
CITATION = re.compile(r"\bdocs/((?:[\w-]+/)*[\w-]+\.md)(?:#([\w-]+))?")


def citations() -> list[tuple[str, int, str, str]]:
    """(file, line, page, anchor or '') for every docs/ page cited in the code directories."""
    found = []
    for top in CODE_DIRS:
        for path in repository_files():
            if path.relative_to(ROOT).parts[0] != top or path.suffix not in CODE_SUFFIXES:
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
            for number, line in enumerate(lines, 1):
                for page, anchor in CITATION.findall(line):
                    found.append((_rel(path), number, page, anchor))
    return found


CITATIONS = citations()


def test_code_cites_the_docs():
    cited = {f"{page}#{anchor}" for _, _, page, anchor in CITATIONS}
    for expected in ("index.md#validation-ladder", "sparse-layers.md#density-allocation"):
        assert expected in cited, f"no code cites docs/{expected} any more; update this test"


@pytest.mark.parametrize(
    "source, line, page, anchor",
    CITATIONS,
    ids=[f"{s}:{n}" for s, n, _, _ in CITATIONS],
)
def test_citation_in_code_resolves(source, line, page, anchor):
    path = DOCS / page
    assert path.is_file(), f"{source}:{line} cites docs/{page}, which does not exist"
    if anchor:
        assert anchor in anchors(path), (
            f"{source}:{line} cites docs/{page}#{anchor}, but docs/{page} has no such heading; "
            f"its anchors are {sorted(anchors(path))}"
        )


# -- self-contained ------------------------------------------------------------------------------

# The design documents kept outside the repository; the names are assembled here so that this
# file does not mention them itself.
OUTSIDE_DOCUMENTS = re.compile(
    r"\b(?:" + "|".join(("DESIGN", "ALGORITHMS", "ANCHORS", "STYLE")) + r")\.md\b"
)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|root|tmp|mnt)/|[A-Z]:\\\\")


def test_no_file_mentions_outside_documents():
    offenders = []
    for path in repository_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.split("\n"), 1):
            if OUTSIDE_DOCUMENTS.search(line):
                offenders.append(f"{_rel(path)}:{number}: {line.strip()}")
    assert not offenders, "files mention documents outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("page", pages(), ids=_rel)
def test_no_machine_specific_paths(page):
    lines = page.read_text(encoding="utf-8").split("\n")
    bad = [f"{n}: {line.strip()}" for n, line in enumerate(lines, 1) if MACHINE_PATH.search(line)]
    assert not bad, f"{_rel(page)} names machine-specific paths:\n" + "\n".join(bad)
