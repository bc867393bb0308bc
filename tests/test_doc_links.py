"""Every document the code and the docs point at is in the repository (issue 12: the code
pointed at a ``DESIGN.md`` and a conventions file that only existed outside it).

Scans the files git tracks for ``docs/<name>.md[#anchor]`` references and Markdown links
to relative paths, and checks that each target exists and that each anchor is a heading
or an explicit ``<a id=...>`` of that file; absolute paths of a developer's machine
(``/work/...``, ``/home/...``) are refused.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DOC_REF = re.compile(r"\bdocs/([\w.-]+\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#([\w-]+))?\)")
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home)/[\w.-]+/")


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.js", "*.html", "*.yml", "*.yaml", "*.toml", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _anchors(doc: Path) -> set[str]:
    """GitHub-style heading slugs and explicit ``id`` anchors of a Markdown file."""
    text = doc.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([\w-]+)"', text))
    for heading in re.findall(r"^#+\s+(.+)$", text, flags=re.MULTILINE):
        plain = re.sub(r"<[^>]+>", "", heading).strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", plain).replace(" ", "-"))
    return anchors


def test_referenced_documents_exist() -> None:
    missing: list[str] = []
    for path in _tracked():
        text = path.read_text(encoding="utf-8", errors="replace")
        refs = [(ROOT / "docs" / name, anchor) for name, anchor in DOC_REF.findall(text)]
        if path.suffix == ".md":
            refs += [
                ((path.parent / target).resolve(), anchor)
                for target, anchor in MD_LINK.findall(text)
                if "://" not in target and not target.startswith(("mailto:", "/"))
            ]
        for target, anchor in refs:
            shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
            where = f"{path.relative_to(ROOT)} -> {shown}"
            if not target.exists():
                missing.append(f"{where}: no such file")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                missing.append(f"{where}#{anchor}: no such section")
    assert not missing, "\n".join(missing)


def test_no_paths_of_a_developer_machine() -> None:
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _tracked()
        if path != this
        for m in MACHINE_PATH.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not found, "\n".join(found)
