"""The repository stands on its own (issue 9, defects 19 and 21): no reference to files a clone does
not have, CI installs as the README says, the README lists what a report holds."""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (e.g. an sdist): every file below the root
        return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return out.stdout.split()


def test_no_reference_to_files_outside_the_repository():
    offenders = []
    for name in _tracked():
        if not name.endswith((".py", ".md", ".toml", ".cfg", ".txt")) or name == "tests/test_repository.py":
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"\.\./shared/|WORKLOADS\.md", text):
            offenders.append(f"{name}: {text[max(0, m.start() - 40):m.end() + 20]!r}")
    assert not offenders, "\n".join(offenders)


def test_ci_installs_as_the_readme_says_without_touching_the_users_venv():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[test]"' in ci and 'pip install -e ".[test]"' in readme
    assert "python -m pytest -n 2" in ci and "python -m pytest -n 2" in readme
    assert not re.search(r"rm -rf? +\.venv\b", ci), "CI must not delete the .venv the README tells users to create"
    assert "--upgrade pip" not in ci


def test_readme_lists_every_file_of_a_report():
    from meganet._folders import REPORT_FILES

    readme = (ROOT / "README.md").read_text()
    missing = [f for f in sorted(REPORT_FILES) if f not in readme and f.replace(".csv", "") not in readme]
    assert not missing, f"README does not mention the report file(s) {missing}"


@pytest.mark.parametrize("opt", ["-ra", "-rs", "-rA"])
def test_skips_are_not_listed_one_line_each(opt):
    text = (ROOT / "pyproject.toml").read_text()
    addopts = re.search(r'addopts\s*=\s*"([^"]*)"', text).group(1).split()
    assert opt not in addopts
