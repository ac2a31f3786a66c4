"""docs/references.md exists, has the sections the code cites, and agrees with the tests' tables.

Code and tests cite it by path, then the section's name in double quotes; a citation naming a
section the file does not have is a dangling reference.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.jpeg.test_tables import STANDARD_ZIGZAG

ROOT = Path(__file__).resolve().parents[2]
REFERENCES = ROOT / "docs" / "references.md"
SOURCE_FOLDERS = ("cdomain", "kernels", "models", "benchmarks", "tests")
CITATION = re.compile(r'docs/references\.md[,:]?\s*(?:#\s*)?(?:section\s+)?"([^"\n]+)"')


def _headings() -> list[str]:
    return [line[3:].strip() for line in REFERENCES.read_text().splitlines() if line.startswith("## ")]


def _citations() -> list[tuple[str, str]]:
    found = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".md") or not path.is_file():
                continue
            # Citations may wrap onto the next comment or docstring line.
            text = re.sub(r"\s*\n\s*#?\s*", " ", path.read_text(errors="replace"))
            found += [(str(path.relative_to(ROOT)), name) for name in CITATION.findall(text)]
    readme = ROOT / "README.md"
    if readme.exists():
        found += [("README.md", name) for name in CITATION.findall(readme.read_text())]
    return found


def test_every_cited_section_exists():
    headings = _headings()
    missing = [(path, name) for path, name in _citations() if name not in headings]
    assert not missing, f"cited sections missing from docs/references.md: {missing}"


def test_sections_the_code_names_are_present():
    headings = _headings()
    for name in [
        "JPEG standard (ITU-T T.81)",
        "IJG libjpeg and libjpeg-turbo",
        "DCT-domain requantization",
        "Networks on DCT coefficients",
        "Learned latents",
        "Crowd counting",
        "Curriculum pre-training",
        "Compression-impact studies",
    ]:
        assert name in headings


def test_table_of_contents_matches_the_headings():
    text = REFERENCES.read_text()
    listed = re.findall(r"^\d+\. \[([^\]]+)\]\(#[^)]+\)$", text, flags=re.M)
    assert listed == _headings()


def test_listed_zigzag_matches_the_tests_transcription():
    # Two transcriptions of T.81 Figure A.6 (this file's and test_tables.py's) must agree.
    section = REFERENCES.read_text().split("## JPEG standard (ITU-T T.81)")[1].split("\n## ")[0]
    block = section.split("```")[1]
    assert [int(n) for n in re.findall(r"\d+", block)] == STANDARD_ZIGZAG

