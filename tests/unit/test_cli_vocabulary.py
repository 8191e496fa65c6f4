"""One CLI vocabulary (issue 16): every (sub)command described, its exit codes in its --help, the
README's command table in step with the parser, `--format text|json` everywhere, `-` for stdin.

The parser is walked generically (nested subcommands included), so a command added later is held
to the same rules without touching this file.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hyperpod_guard.cli import build_parser
from tests.conftest import EVENTS, REPO

SCENARIO = EVENTS / "degraded-group-failed"
NOW = "2026-11-20T10:00:05Z"
#: commands whose module another change owns and that do not list their exit codes yet (cli/rules.py)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hyperpod_guard.cli", *args],
                          capture_output=True, text=True, input=stdin, timeout=60)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """(command path, its parser, whether it is a group of subcommands), depth first."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if path:
        yield path, parser, bool(groups)
    for group in groups:
        for name, child in group.choices.items():
            yield from walk(child, (*path, name))


COMMANDS = list(walk(build_parser()))
LEAVES = {path: parser for path, parser, group in COMMANDS if not group}


def visible_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every option string of the options --help shows (hidden aliases and -h left out)."""
    return {option: action for action in parser._actions
            if action.option_strings and action.help is not argparse.SUPPRESS
            and not isinstance(action, argparse._HelpAction)
            for option in action.option_strings if option.startswith("--")}


def readme_rows() -> dict[tuple[str, ...], str]:
    """The command table of README "The command line": command path -> its synopsis (the row's code)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    rows: dict[tuple[str, ...], str] = {}
    for line in section.splitlines():
        match = re.match(r"\| `hyperpod-guard ((?:[^`\\]|\\.)+)` \|", line)
        if not match:
            continue
        synopsis = match.group(1).replace("\\|", "|")
        words = synopsis.split()
        path: tuple[str, ...] = ()
        while words and (*path, words[0]) in {p for p, _, _ in COMMANDS}:
            path, words = (*path, words[0]), words[1:]
        assert path not in rows, f"two README rows for {' '.join(path)}"
        rows[path] = synopsis
    return rows


def test_the_walk_finds_nested_subcommands():
    assert ("rules", "push") in LEAVES and ("evaluate",) in LEAVES and ("test-alert",) in LEAVES
    assert ("rules",) not in LEAVES


@pytest.mark.parametrize("path", [p for p, _, _ in COMMANDS], ids=" ".join)
def test_every_command_has_a_description(path):
    parser = dict((p, parser) for p, parser, _ in COMMANDS)[path]
    assert parser.description and parser.description.strip(), f"`{' '.join(path)}` has no description"


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_command_lists_its_exit_codes(path):
    epilog = LEAVES[path].epilog or ""
    assert "exit codes: 0 " in epilog and "2 " in epilog, \
        f"`{' '.join(path)} --help` does not end with its exit codes (use common.exit_codes)"


def test_readme_table_lists_every_command_and_only_those():
    rows = readme_rows()
    missing = sorted(" ".join(p) for p in LEAVES if p not in rows)
    unknown = sorted(" ".join(p) or "(no command)" for p in rows if p not in LEAVES)
    assert not missing, f"commands missing from the README's command table: {missing}"
    assert not unknown, f"README rows naming no command (or a group): {unknown}"


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_readme_row_options_match_the_parser(path):
    synopsis = readme_rows().get(path)
    if synopsis is None:
        pytest.skip("no row (test_readme_table_lists_every_command_and_only_those says so)")
    options = visible_options(LEAVES[path])
    written = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", synopsis))
    assert written <= set(options), f"README options the parser does not have: {sorted(written - set(options))}"
    unwritten = {a.option_strings[0] for a in options.values() if not written & set(a.option_strings)}
    assert not unwritten, f"options of `{' '.join(path)}` missing from its README row: {sorted(unwritten)}"
    for option, choices in re.findall(r"(--[a-z][a-z0-9-]*) ([\w-]+(?:\|[\w-]+)+)", synopsis):
        assert set(choices.split("|")) == set(options[option].choices or ()), f"{option} choices"
    for action in LEAVES[path]._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert str(action.metavar or action.dest) in synopsis.split(), f"positional {action.metavar}"


@pytest.mark.parametrize("path", sorted(p for p, parser in LEAVES.items() if "--format" in visible_options(parser)),
                         ids=" ".join)
def test_format_is_text_or_json_everywhere_and_table_means_text(path):
    action = visible_options(LEAVES[path])["--format"]
    # text and json first everywhere; a command may offer more after them (`report`: csv, html)
    assert list(action.choices or ())[:2] == ["text", "json"] and action.default == "text"
    required = {("check",): ["--cluster", "c"], ("evaluate",): ["--event", "e"], ("explain",): ["--cluster", "c"],
                ("routes", "test"): ["--cluster", "c"]}
    prefix = [*path, *required.get(path, [])]
    parser = build_parser()
    assert parser.parse_args([*prefix, "--format", "table"]).format == "text"
    assert parser.parse_args([*prefix, "--format", "text"]).format == "text"
    assert parser.parse_args([*prefix, "--format", "json"]).format == "json"


def test_prefix_and_path_say_what_they_are():
    """`--prefix` (the stack's name prefix) and `rules --path` (an SSM path) are different things."""
    for path, parser in LEAVES.items():
        options = visible_options(parser)
        if "--prefix" in options:
            assert "stack's name prefix" in (options["--prefix"].help or ""), path
        if "--path" in options:
            assert "SSM" in (options["--path"].help or ""), path


# --- `-` is standard input wherever a file is read ------------------------------------------------


def test_validate_reads_standard_input():
    result = run("validate", "-", stdin='{"version": 1}')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(standard input): valid")


def test_validate_reports_problems_from_standard_input():
    result = run("validate", "-", stdin='{"version": 2}')
    assert result.returncode == 1
    assert "(standard input): 1 problem(s)" in result.stdout and "$.version" in result.stdout


def test_evaluate_reads_the_event_from_standard_input():
    result = run("evaluate", "--event", "-", "--format", "json", "--now", NOW,
                 stdin=(SCENARIO / "event.json").read_text())
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["findings"]) == 2


def test_evaluate_reads_the_rules_from_standard_input():
    rules = {"version": 1, "policies": {"degraded-group": {"enabled": False}}}
    result = run("evaluate", "--event", str(SCENARIO / "event.json"), "--rules", "-", "--format", "json",
                 "--now", NOW, stdin=json.dumps(rules))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["findings"] == []


def test_only_one_file_can_come_from_standard_input():
    result = run("evaluate", "--event", "-", "--rules", "-", stdin="{}")
    assert result.returncode == 2
    assert result.stderr.startswith("error: only one file can be read from standard input")
    assert "Traceback" not in result.stderr
