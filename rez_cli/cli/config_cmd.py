"""``rez config``: write a starter config, or show the effective one and where each value comes from."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rez_cli.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from rich.console import RenderableType

    from rez_cli.config.origins import ConfigReport

app = typer.Typer(
    help="Write a commented starter config, or show the effective config and where each value comes from.",
    no_args_is_help=True,
)


@app.command("init")
def init(
    force: Annotated[bool, typer.Option("--force", help="Replace files that already exist.")] = False,
) -> None:
    """Write config.toml and the risk profiles into the user config dir, to edit from there.

    Example: rez config init && $EDITOR "$(rez config show --json | jq -r .config_file)"
    """
    from rez_cli.cli.console import stdout_console
    from rez_cli.config.origins import init_config

    written = init_config(force=force)
    console = stdout_console()
    for item in written:
        console.print(f"{'replaced' if item.replaced else 'wrote'} {item.path}", soft_wrap=True)


@app.command("show")
def show(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Show every config value after the file and REZ__ overrides, with where it came from.

    Example: REZ__MARKET__TIMEFRAME=4h rez config show
    """
    from rez_cli.cli.console import print_json_line, stdout_console
    from rez_cli.config.origins import show_config

    report = show_config(config)
    if json_output:
        print_json_line(report.as_json())
        return
    stdout_console().print(_report_view(report))


def _report_view(report: ConfigReport) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    from rez_cli.display import DataTable, display_str

    header = Text()
    header.append("config file  ", style="bold")
    header.append(display_str(report.path, multiline=False))
    if report.shipped:
        header.append("  (shipped defaults; `rez config init` copies them for editing)", style="dim")
    header.append("\nprofile      ", style="bold")
    header.append(
        display_str(f"{report.profile_name}  {report.profile_path or '(built in)'}", multiline=False)
    )
    if report.env_overrides:
        header.append("\noverrides    ", style="bold")
        header.append(display_str(", ".join(report.env_overrides), multiline=False))
    table = DataTable(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("origin", overflow="fold", style="dim")
    for item in report.values:
        table.add_row(str(item.key), _value_text(item.value), str(item.origin))
    return Group(header, Text(""), table)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))
