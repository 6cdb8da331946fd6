"""The documentation site: every page of the nav exists, no user-facing text cites the
project's issue tracker, the executed notebook copies match their notebooks, and (slow tier)
``mkdocs build --strict`` passes and a headless browser renders the home page and an API page."""

import importlib.util
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages() -> list[str]:
    """Every page named in mkdocs.yml's nav (``Title: path.md`` or ``- path.md`` lines)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    return re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.(?:md|ipynb))\s*$", nav, flags=re.M)


def test_every_nav_page_exists():
    pages = _nav_pages()
    generated = _hooks().GENERATED  # pages the hook makes from files outside docs/
    assert len(pages) >= 30 and "index.md" in pages and "own-problem.md" in pages
    missing = [p for p in pages if not (DOCS / p).exists() and p not in generated]
    assert not missing, f"in mkdocs.yml's nav but not in docs/: {missing}"
    for source, _ in generated.values():
        assert (ROOT / source).exists(), source


def test_every_notebook_has_an_executed_copy_in_the_nav():
    nav = set(_nav_pages())
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.name}" in nav, f"{nb.name}: add it to mkdocs.yml's nav and run docs/notebooks/render.py"


@pytest.mark.parametrize("copy", sorted((DOCS / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_executed_notebook_copy_is_current(copy):
    """The site shows executed copies (docs/notebooks/render.py); their code is the notebook's."""
    import nbformat

    source = ROOT / "notebooks" / copy.name
    assert source.exists(), f"{copy.name}: no such notebook in notebooks/"
    code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]  # noqa: E731
    ours, theirs = nbformat.read(copy, as_version=4), nbformat.read(source, as_version=4)
    assert code(ours) == code(theirs), f"stale: rerun `python docs/notebooks/render.py {copy.stem}`"
    assert [c.source for c in ours.cells] == [c.source for c in theirs.cells], \
        f"text changed: `python docs/notebooks/render.py --text {copy.stem}`"
    outputs = [o for c in ours.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert copy.stat().st_size < 1_000_000  # figures re-encoded by render.shrink


ISSUE = re.compile(r"\bissues? #?\d+", re.I)


def _user_facing() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md")),
             *sorted((ROOT / "notebooks").glob("make_*.py"))]
    return [f for f in files if f.exists()]


def test_no_user_facing_doc_mentions_issue_numbers():
    hits = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}" for f in _user_facing()
            for i, line in enumerate(f.read_text().splitlines(), 1) if ISSUE.search(line)]
    assert not hits, "\n".join(hits)


def test_install_hints_work_from_a_checkout():
    """``pip install invsolve[brain]`` names a package index entry that does not exist; the
    extras install from a checkout with ``pip install -e ".[brain]"``."""
    bad = re.compile(r"pip install ['\"]?invsolve\[")
    files = [*_user_facing(), *sorted((ROOT / "invsolve").rglob("*.py")), *sorted((ROOT / "invsolve").rglob("*.md"))]
    hits = [f"{f.relative_to(ROOT)}:{i}" for f in files
            for i, line in enumerate(f.read_text().splitlines(), 1) if bad.search(line)]
    assert not hits, hits


def test_changelog_and_citation():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog") and "## [0.1.0]" in changelog
    cite = (DOCS / "cite.md").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    version = re.search(r"^version:\s*(\S+)", cff, flags=re.M).group(1)
    assert f"version = {{{version}}}" in cite and "@software{invsolve" in cite
    assert cite.count("@inproceedings") + cite.count("@article") >= 12


# --- slow tier: build the site, look at it -------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def _env():
    import os

    return {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


@pytest.mark.slow
def test_site_builds_strict(site):
    home = (site / "index.html").read_text()
    assert "invsolve" in home and "poisson-inverse" in home
    api = (site / "api" / "solvers" / "index.html").read_text()
    assert "GradientMAP" in api and "doc-class" in api  # the API reference came out of the docstrings
    for page in ("benchmarks", "changelog", "cite", "cli", "own-problem", "notebooks/01_poisson"):
        assert (site / page / "index.html").exists(), page
    nb = (site / "notebooks" / "01_poisson" / "index.html").read_text()
    assert "data:image/png;base64" in nb or "data:image/jpeg;base64" in nb  # rendered with its figures


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def _png_pixels(data: bytes):
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) to rows of bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "api/solvers/index.html"])
def test_headless_browser_screenshot_is_not_blank(site, page, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH (Debian: apt-get install chromium)")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,900", (site / page).as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000, proc.stderr[-2000:]
    width, height, bpp, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    colours = {row[i:i + 3] for row in rows[::10] for i in range(0, width * bpp, 10 * bpp)}
    assert len(colours) > 20, f"{page}: the screenshot is blank ({len(colours)} colours)"
    dark = sum(1 for row in rows[::10] for i in range(0, width * bpp, 10 * bpp) if sum(row[i:i + 3]) < 200)
    assert dark > 100, f"{page}: no text drawn"
