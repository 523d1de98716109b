"""Every command the documentation shows is executable: the `python runners/...` commands
of README.md and docs/*.md (in shell code blocks, indented or not, and in inline code), the
commands in the header comments of search_spaces/ and ablations/, and the examples in each
runner's own --help, for the runners that have a dry run (sweep, ablate, train), run with
--dry-run. Every YAML example of docs/search_spaces.md and docs/ablations.md loads as written
(an excerpt marked `...` aside): a spec copied from the documentation works.

A command whose input is the output of an earlier run (a `results/...` config or run folder)
or a placeholder (`<run-id>`, `RUN`) cannot be dry-run on a fresh checkout; those are listed
by the test, and their count is bounded so that the skip cannot swallow the documentation.
"""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from pianoeval.paths import REPO_ROOT

DRY_RUNNERS = {"sweep.py", "ablate.py", "train.py"}
COMMAND = re.compile(r"(python runners/[\w.]+\.py\b[^`#]*)")


def _logical_lines(lines: list[str]) -> list[str]:
    """Lines with backslash continuations joined (comment markers of YAML headers dropped)."""
    joined, buffer = [], ""
    for line in lines:
        line = line.rstrip()
        buffer = f"{buffer} {line.strip().lstrip('#').strip()}" if buffer else line
        if buffer.endswith("\\"):
            buffer = buffer[:-1]
            continue
        joined.append(buffer)
        buffer = ""
    return joined


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every documented runner command."""
    found = []
    for doc in sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]):
        # every fenced block, whatever its language, so that a YAML block's closing fence is not
        # taken for the opening of a shell block; the shell ones (or untagged) are read
        text = doc.read_text()
        blocks = re.findall(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", text, re.S | re.M)
        for block in (body for language, body in blocks if language in ("", "bash", "sh", "shell")):
            for line in _logical_lines(block.splitlines()):
                found += [(doc.name, m.strip()) for m in COMMAND.findall(line)]
        prose = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.S | re.M)
        found += [(doc.name, m.strip()) for m in re.findall(r"`(python runners/[^`]+)`", prose)]  # inline code
    for spec in sorted([*(REPO_ROOT / "search_spaces").glob("*.yaml"), *(REPO_ROOT / "ablations").glob("*.yaml")]):
        header = [line[1:] for line in spec.read_text().splitlines() if line.startswith("#")]
        for line in _logical_lines(header):
            found += [(f"{spec.parent.name}/{spec.name}", m.strip()) for m in COMMAND.findall(line)]
    for runner in sorted((REPO_ROOT / "runners").glob("*.py")):
        docstring = runner.read_text().split('"""')[1]
        for line in _logical_lines(docstring.splitlines()):
            found += [(f"runners/{runner.name}", m.strip()) for m in COMMAND.findall(line)]
    return found


def _argv(command: str) -> list[str]:
    command = re.sub(r"\[--[^\]]*\]", "", command)  # optional parts written [--set ...]
    return shlex.split(command)[1:]  # drop "python"


def _needs_earlier_output(argv: list[str]) -> bool:
    """A placeholder (`<run-id>`, `$fold`), a spec the user writes (`my_space`), or a file an
    earlier command writes (`RUN/resolved.yaml`, a folds file from `check_split.py --write`)."""
    if any("<" in arg or "$" in arg for arg in argv):
        return True
    values = [value for flag, value in zip(argv, argv[1:]) if flag in ("--config", "--split", "--space")]
    values += [value.split("=", 1)[1] for flag, value in zip(argv, argv[1:])  # e.g. --set data.frames=han.pt
               if flag == "--set" and value.endswith((".pt", ".json", ".yaml"))]
    if len(argv) > 1 and not argv[1].startswith("-"):
        values.append(argv[1])  # ablate.py's spec
    return any(value.startswith("my_") or (value.endswith((".json", ".yaml", ".pt")) and not (REPO_ROOT / value).is_file())
               for value in values)


COMMANDS = documented_commands()
RUNNABLE = [(where, cmd) for where, cmd in COMMANDS
            if Path(_argv(cmd)[0]).name in DRY_RUNNERS and not _needs_earlier_output(_argv(cmd))]


def test_the_documentation_has_commands_and_most_can_be_dry_run():
    dry = [c for c in COMMANDS if Path(_argv(c[1])[0]).name in DRY_RUNNERS]
    assert len(RUNNABLE) >= 30 and len(RUNNABLE) >= 0.8 * len(dry), [c for c in dry if c not in RUNNABLE]
    for _, command in COMMANDS:  # every documented runner exists
        assert (REPO_ROOT / _argv(command)[0]).is_file(), command


@pytest.mark.parametrize("where,command", RUNNABLE, ids=[f"{w}:{c[15:60]}" for w, c in RUNNABLE])
def test_documented_command_dry_runs(where, command, tmp_path, capsys, monkeypatch):
    argv = _argv(command)
    script = argv[0]
    extra = ["--dry-run"] + (["--no-estimate"] if script.endswith("ablate.py") else [])
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(sys, "argv", [script, *argv[1:], *extra])
    before = _earlier_sweep_run(argv, tmp_path / "results")
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
    err = capsys.readouterr().err
    assert stop.value.code == 0, f"{where}: `{command}` exits {stop.value.code}: {err}"
    after = sorted(p for p in (tmp_path / "results").rglob("*")) if before else []
    assert after == before and (before or not (tmp_path / "results").exists()), "a dry run wrote results"


def _earlier_sweep_run(argv: list[str], results: Path) -> list[Path]:
    """For a sweep `--resume`, the run it continues (its sweep.yaml, as the engine writes it: a
    sweep's dry run checks that the run exists); the files under ``results`` then."""
    if Path(argv[0]).name != "sweep.py" or "--resume" not in argv:
        return []
    from pianoeval.sweep import load_space
    from pianoeval.sweep.record import write_sweep_file

    value = dict(zip(argv, argv[1:]))
    space = load_space(value["--space"])
    run = results / "sweeps" / space.name / value.get("--run-id", "earlier")
    run.mkdir(parents=True)
    write_sweep_file(space, str(run), [("", space.budget.num_samples)])
    return sorted(results.rglob("*"))


def documented_specs() -> list[tuple[str, str]]:
    """(where, text) for every YAML block of the spec documentation, excerpts (`...`) left out."""
    found = []
    for doc in ("search_spaces.md", "ablations.md"):
        blocks = re.findall(r"^```yaml\n(.*?)^```", (REPO_ROOT / "docs" / doc).read_text(), re.S | re.M)
        found += [(f"{doc}[{i}]", text) for i, text in enumerate(blocks) if "\n  ...\n" not in text]
    return found


SPECS = documented_specs()


@pytest.mark.parametrize("where,text", SPECS, ids=[where for where, _ in SPECS])
def test_documented_spec_loads_as_written(where, text, tmp_path, monkeypatch):
    """A whole spec loads as it is; a block of parameter entries loads as the `parameters:` of a
    space over one of the models the examples use; any other search-space excerpt (a `budget:`
    line) beside `model: {name: han}`."""
    from pianoeval.ablation.spec import load_ablation
    from pianoeval.errors import ConfigError
    from pianoeval.sweep.space import load_space

    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    path = tmp_path / "spec.yaml"
    if where.startswith("ablations.md"):
        path.write_text(text)
        load_ablation(path)
        return
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if any(line.startswith(("model:", "extends:")) for line in lines):
        candidates = [text]
    elif all(re.match(r"[a-z_]+\.[\w.]+:", line) for line in lines):  # parameter entries
        indented = "".join(f"  {line}\n" for line in text.splitlines())
        candidates = [f"model: {{name: {model}}}\nparameters:\n{indented}" for model in ("han", "a1_lora")]
    else:
        candidates = [f"model: {{name: han}}\n{text}"]
    errors = []
    for candidate in candidates:
        path.write_text(candidate)
        try:
            load_space(path)
            return
        except ConfigError as err:
            errors.append(str(err))
    pytest.fail(f"docs/{where} does not load as written: {errors}")


def test_the_spec_documentation_has_examples():
    assert len(SPECS) >= 8 and any(where.startswith("ablations.md") for where, _ in SPECS)
