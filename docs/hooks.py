"""mkdocs hook: pages whose source lives outside docs/ (no copies to keep in step, no network).

``benchmarks/README.md`` becomes ``benchmarks.md`` and ``CHANGELOG.md`` becomes
``changelog.md``. On the family pages, an experiment's ``fields.png`` figure is followed by its
``history.png`` (the loss or residual per step) when the reproduction report has one.
"""

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).parents[1]
# site page -> (repository file, a line put under its first heading)
GENERATED = {
    "benchmarks.md": ("benchmarks/README.md",
                      "*This page is `benchmarks/README.md` of the repository; the scripts it names are in `benchmarks/`.*"),
    "changelog.md": ("CHANGELOG.md", None),
}


def page_text(name: str) -> str:
    source, note = GENERATED[name]
    text = (ROOT / source).read_text()
    if note:
        head, sep, rest = text.partition("\n")
        text = f"{head}\n\n{note}\n{rest}" if head.startswith("# ") else f"{note}\n\n{text}"
    return text


def on_files(files, config):
    for name in GENERATED:
        files.append(File.generated(config, name, content=page_text(name)))
    return files


FIELDS = re.compile(r"^!\[([\w-]+): truth, estimate and error\]\(reproduce-quick/([\w-]+)/fields\.png\)$", re.M)


def on_page_markdown(markdown, page, config, files):
    docs = Path(config["docs_dir"])

    def with_history(m):
        name = m.group(2)
        if (docs / "reproduce-quick" / name / "history.png").exists():
            return f"{m.group(0)}\n\n![{name}: history per step](reproduce-quick/{name}/history.png)"
        return m.group(0)

    return FIELDS.sub(with_history, markdown)
