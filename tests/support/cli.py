"""Run ``rez`` in-process the way a shell would, and collect what a user sees."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from rez_cli.cli.app import main


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return Result(code, out, err)
