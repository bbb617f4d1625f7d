"""The committed contract reference is the one the code renders."""

from __future__ import annotations

from pathlib import Path

from schedobs.contract import render_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_docs_contract_md_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "contract.md").read_text()
    assert committed == render_markdown() + "\n", (
        "docs/contract.md is stale: regenerate it with `schedobs contract > docs/contract.md`"
    )


def test_readme_shows_the_two_commands_and_the_contract() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
    for name in (
        "scheduler_queue_length",
        "scheduler_schedule_latency_milliseconds",
        "scheduler_rejected_tasks_total",
    ):
        assert name in readme


def test_readme_runtime_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    import re

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## The GMP runtime.*?```python\n(.*?)```", readme, re.S)
    assert match, "README has no runtime example"
    exec(compile(match.group(1), "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "42"


def test_readme_tenancy_example_runs(capsys) -> None:  # type: ignore[no-untyped-def]
    import re

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## Tenants, quotas and refusals.*?```python\n(.*?)```", readme, re.S)
    assert match, "README has no tenancy example"
    exec(compile(match.group(1), "README.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["3", "['constraint_violation',", "'quota_exceeded']"]


def test_readme_adapters_example_runs_as_pasted(capsys) -> None:  # type: ignore[no-untyped-def]
    """It used to call install() outside a running loop (RuntimeError as pasted)."""
    import re

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"ready adapters:\n\n```python\n(.*?)```", readme, re.S)
    assert match, "README has no adapters example"
    exec(compile(match.group(1), "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.split() == ["6", "4"]


def test_every_test_reliability_md_names_exists() -> None:
    import re

    text = (ROOT / "RELIABILITY.md").read_text()
    files = set(re.findall(r"`(tests/[\w/]+\.py)", text))
    assert len(files) >= 8
    for f in files:
        assert (ROOT / f).exists(), f
    for name in re.findall(r"::(test_\w+)", text):
        sources = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
        assert f"def {name}(" in sources, name
