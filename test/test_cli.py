"""The `strongpose` command: every verb registers, and listing them stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from strongpose_ros.bench import BENCHMARKS
from strongpose_ros.cli import VERBS, build_parser, main


def test_every_verb_has_help():
    parser = build_parser()
    for verb in VERBS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([verb, "--help"])
        assert exit_info.value.code == 0


def test_help_does_not_import_torch_or_rclpy():
    """`strongpose --help` (and building every verb's parser) must not pay for torch, numba or rclpy."""
    code = ("import sys; from strongpose_ros.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numba', 'rclpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_registered_benchmark_has_its_interface(name):
    from importlib import import_module

    module = import_module(f"strongpose_ros.bench.{name}")
    assert callable(module.add_arguments) and callable(module.run)


def test_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "no_such_benchmark"])
    assert "no_such_benchmark" in capsys.readouterr().err
