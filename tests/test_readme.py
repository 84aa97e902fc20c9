"""The README's code must run as printed."""

import pathlib
import re


def test_readme_script_runs(capsys):
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python block"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    assert "PASS" in capsys.readouterr().out
