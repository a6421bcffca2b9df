"""The documentation: README's size and first screen, headline numbers that match RESULTS.md, a README in
every recipe dir, and links between the Markdown pages that resolve (files and #anchors)."""
import re
from pathlib import Path

import pytest

from conftest import ROOT
from espnet_ext import readme_results as rr
from espnet_ext.bin import sync_readme

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "egs").glob("*/palign1/README.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_readme_is_short_and_shows_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10 * 1024
    first_screen = "\n".join(readme.splitlines()[:40])
    assert "cd egs/synth_emo/palign1 && ./run.sh" in first_screen and "bash test/run.sh" in first_screen


def test_every_recipe_dir_has_a_readme():
    for d in (ROOT / "egs").glob("*/palign1"):
        assert (d / "README.md").is_file(), d


def test_headline_numbers_match_results_md():
    assert sync_readme.main(["--check"]) == 0  # README.md and the synth_emo README, from its RESULTS.md
    block = rr.current_block((ROOT / "README.md").read_text())
    results = (ROOT / "egs" / "synth_emo" / "palign1" / "RESULTS.md").read_text()
    paraalign = rr.find_row(rr.parse_tables(results)["test"], "ParaAlign")
    assert paraalign["Emo WA [95% CI]"] in block and paraalign["Pair sens. [95% CI]"] in block


def test_a_changed_number_is_caught(tmp_path):
    readme = tmp_path / "README.md"
    results = ROOT / "egs" / "synth_emo" / "palign1" / "RESULTS.md"
    readme.write_text(f"x\n{rr.BEGIN}\n{rr.END}\n")
    assert sync_readme.main(["--results", str(results), "--readmes", str(readme)]) == 0
    good = readme.read_text()
    assert sync_readme.main(["--check", "--results", str(results), "--readmes", str(readme)]) == 0
    shown = rr.find_row(rr.parse_tables(results.read_text())["test"], "ParaAlign")["Emo WA [95% CI]"].split()[0]
    readme.write_text(good.replace(shown, "0.111", 1))  # a hand edit of the headline
    assert sync_readme.main(["--check", "--results", str(results), "--readmes", str(readme)]) == 1
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="needs exactly one"):
        sync_readme.main(["--results", str(results), "--readmes", str(readme)])


def test_the_block_names_the_commits_the_stages_ran_at_not_only_the_report():
    regenerated = ("- date: 2026-12-07 13:52:02 UTC\n- ParaAlign commit: ddb0462 (this report); the stages in this exp "
                   "dir ran at d32cb19, 2d1d92c (exp/run_history.sh)\n")
    assert rr.commit_and_date(regenerated) == ("ddb0462, its stages at d32cb19, 2d1d92c", "2026-12-07")
    assert rr.commit_and_date("- date: 2026-01-02\n- ParaAlign commit: abc1234\n") == ("abc1234", "2026-01-02")
    assert rr.commit_and_date("no header") == ("unknown", "unknown")


def test_parse_tables_reads_each_sections_first_table_only():
    md = ("## test\n\n| System | A |\n|---|---|\n| S1 | 1 |\n\ntext\n\n| Other | B |\n|---|---|\n| S2 | 2 |\n"
          "## Ablations\n### test\n| Variant | A |\n|---|---|\n| v | 3 |\n")
    assert rr.parse_tables(md)["test"] == {"S1": {"System": "S1", "A": "1"}}  # not S2, not the variant


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ... not checked offline
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"
