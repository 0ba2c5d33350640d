"""The two command lines: -h and --version everywhere, and help text for every argument and option."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import harness
import runners
from harness.cli import cli as harness_cli
from runners.cli import main as runner_cli


def commands(group: click.Group):
    return [(name, group.get_command(None, name)) for name in group.list_commands(None)]


@pytest.mark.parametrize("group,version", [(harness_cli, harness.__version__), (runner_cli, runners.__version__)])
def test_short_help_and_version(group, version):
    runner = CliRunner()
    for args in (["-h"], ["--help"]):
        done = runner.invoke(group, args)
        assert done.exit_code == 0 and "Usage:" in done.output
    done = runner.invoke(group, ["--version"])
    assert done.exit_code == 0 and version in done.output
    for name, _ in commands(group):
        done = runner.invoke(group, [name, "-h"])
        assert done.exit_code == 0 and "usage:" in done.output.lower(), name   # runner install: argparse


@pytest.mark.parametrize("group", [harness_cli, runner_cli])
def test_every_option_has_help_and_every_argument_is_named_in_the_command_help(group):
    for name, command in commands(group):
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 10, f"{name} {param.opts}"
            else:
                assert param.name.upper() in command.help, f"{name}: argument {param.name} is not described"
