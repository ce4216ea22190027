"""README is a user's document: its two set-up commands are the ones CI runs, its links resolve,
and it carries no development paths or lab notes (those live in docs/results)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_the_two_setup_commands_are_what_ci_runs() -> None:
    install, test = setup_commands()
    assert install.endswith("&& ferkit train --config configs/quickstart.yaml")
    assert (REPO / "configs" / "quickstart.yaml").is_file()
    assert test.endswith("&& python -m pytest -q")
    ci = (REPO / ".ci" / "run").read_text()
    pip_lines = [line.strip() for line in test.split("&&")[:-1]]
    assert pip_lines[0].startswith("pip install torch==2.13.0 -e") and len(pip_lines) == 2
    for pip in pip_lines:  # CI installs exactly the same packages
        assert f"python3 -m {pip.replace('pip install', 'pip install -q')}" in ci
    assert "\npython3 -m pytest -q  #" in ci  # README's test command, python3 for python
    assert install.split("&&")[1] == test.split("&&")[1]  # the same weight files in both


def test_links_resolve() -> None:
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    assert len(targets) > 10
    missing = [t for t in targets if not t.startswith("http") and not (REPO / t).exists()]
    assert missing == []


def test_no_development_paths_or_lab_notes() -> None:
    for phrase in ("../shared", "/work/", "still running", "in progress", "no GPU has been",
                   "pending", "so far"):
        assert phrase not in README, phrase
