"""The READMEs and the code stay readable and their links stay valid: README.md is at most 300 lines
and opens with its two commands; every relative link in README.md, experiments/README.md and
experiments/LOG.md names a file that exists, and every #anchor a heading of the file it points
into; every top-level .py file is at most 600 lines and every module docstring at most 35."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "experiments/README.md", "experiments/LOG.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped except '-' and '_', spaces to '-'."""
    out, fenced = set(), False
    for line in path.read_text().splitlines():
        fenced ^= line.startswith("```")  # a '# comment' in a code block is no heading
        if not fenced and (m := re.match(r"#+ (.*)", line)):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


def test_readme_is_short_and_opens_with_its_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks[:2] == ["pip install -r requirements.txt && python ppo.py --env generalpoints\n",
                          "pip install -r requirements.txt && python -m pytest -q\n"]


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_point_to_files_and_headings(doc):
    path = ROOT / doc
    bad = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{doc}: " + "; ".join(bad)


def test_files_and_module_docstrings_stay_short():
    long_files = [f"{p.name}: {n} lines" for p in sorted(ROOT.glob("*.py"))
                  if (n := len(p.read_text().splitlines())) > 600]
    long_docs = [f"{p.relative_to(ROOT)}: {n} lines" for p in sorted(ROOT.rglob("*.py"))
                 if ".git" not in p.parts and (doc := ast.get_docstring(ast.parse(p.read_text()), clean=False))
                 and (n := len(doc.splitlines())) > 35]
    assert not long_files + long_docs
