"""Text from outside is data: never markup, never terminal control, in every view Rez shows.

A rationale, a server's error message, a tool result, a symbol read from a journal: any of them may
hold Rich markup (``[/red]`` raised ``MarkupError``, ``[link=...]`` hid a URL), escape sequences
(an OSC 52 clipboard write, a screen clear), NUL, C1 controls or bidi overrides. Every view is
rendered here with arbitrary text in every field it shows, on a plain Rich console (so the views are
safe by construction, not only on Rez's own consoles) and on Rez's consoles.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rich.console import Console, Group, RenderableType
from rich.text import Text

from rez_cli.cli import render
from rez_cli.cli.app import main
from rez_cli.cli.backtest_cmd import summary_view
from rez_cli.cli.config_cmd import _report_view
from rez_cli.cli.console import SafeConsole, stderr_console, stdout_console
from rez_cli.cli.doctor_cmd import _lines
from rez_cli.cli.score_cmd import report_view
from rez_cli.cli.traces_cmd import _stats_tables, list_table, replay_view
from rez_cli.config.origins import ConfigReport, ConfigValue
from rez_cli.config.settings import RiskProfile
from rez_cli.cycle.orchestrator import DryRun
from rez_cli.cycle.replay import Replay
from rez_cli.decision.model import Decision
from rez_cli.display import DataTable, display_str, display_text
from rez_cli.doctor.checks import Check
from rez_cli.market.snapshot import Context
from tests.support.cli import run
from tests.support.openai_server import FakeOpenAI, error, reply

AS_OF = "2021-03-01T12:00"  # the rules mode buys BTC/USDT on the sim market here
MARKUP = "[/red] [blink red]blink[/blink red] [link=https://evil.example]click[/link] [/]"
ESCAPES = "\x1b]52;c;aGVsbG8=\x07 \x1b[2J \x1b[31mred\x1b[0m \x00 \x9b31m \x1b]8;;https://evil.example\x1b\\x"
BIDI = "\u202ecod.exe\u202c \u2066iso\u2069 \u200f"
HOSTILE = f"{MARKUP} {ESCAPES} {BIDI}"
FRAGMENTS = [
    "[/red]",
    "[blink red]",
    "[link=https://evil.example]",
    "[/link]",
    "[/]",
    "[bold",
    "]",
    "\\",
    ":smile:",
    "\x1b",
    "\x1b[2J",
    "\x1b]52;c;aGVsbG8=\x07",
    "\x1b]8;;https://evil.example\x1b\\",
    "\x07",
    "\x00",
    "\x08",
    "\r",
    "\r\n",
    "\n",
    "\t",
    "\x7f",
    "\x85",
    "\x9b",
    "\u061c",
    "\u200e",
    "\u2028",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ud800",
    "e\u0301",
    "宽",
    "🙂",
]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x2070), max_size=40),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=12).map("".join),
)

# What Rich itself writes for styling (SGR); a plain or Rez console writes nothing else that starts
# with ESC, so anything left once these are removed came from the text.
SGR = re.compile(r"\x1b\[[0-9;]*m")
FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _cli_json(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    assert code == 0, out.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


class Samples(dict[str, Any]):
    """The payloads, with a short repr: Hypothesis prints the fixture with a falsifying example."""

    def __repr__(self) -> str:
        return "<samples: " + ", ".join(self) + ">"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Real payloads of every view, from a rules decision, its trace, its score and a backtest."""
    journal = str(tmp_path_factory.mktemp("hostile") / "j.sqlite")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("OPENAI_API_KEY", raising=False)
        env.delenv("OPENAI_BASE_URL", raising=False)
        [decision] = _cli_json(
            "decide",
            "BTC/USDT",
            "--mode",
            "rules",
            "--exchange",
            "sim",
            "--as-of",
            AS_OF,
            "--json",
            "--journal",
            journal,
        )
        [record] = _cli_json("traces", "export", decision["trace_id"], "--journal", journal)
        [score] = _cli_json("score", "--journal", journal, "--json")
        [backtest] = _cli_json(
            "backtest",
            "BTC/USDT",
            "--exchange",
            "sim",
            "--mode",
            "rules",
            "--from",
            "2021-01-01",
            "--to",
            "2021-01-03",
            "--json",
            "--journal",
            journal,
        )
        [stats] = _cli_json("traces", "stats", "--journal", journal, "--json")
        rows = _cli_json("traces", "list", "--journal", journal, "--json")
    assert decision["action"] == "buy"
    assert score["groups"]
    return Samples(decision=decision, record=record, score=score, backtest=backtest, stats=stats, rows=rows)


def _context(samples: dict[str, Any], text: str) -> dict[str, Any]:
    context: dict[str, Any] = copy.deepcopy(samples["record"]["context"])
    snapshot = next(iter(context["timeframes"].values()))
    context.update(symbol=text, exchange=text, primary_timeframe=text, timeframes={text: snapshot})
    return context


def _decision(samples: dict[str, Any], text: str) -> dict[str, Any]:
    decision: dict[str, Any] = copy.deepcopy(samples["decision"])
    decision.update(symbol=text, rationale=text, invalidation=text, mode=text, trace_id=text, error=text)
    decision["usage"]["timings_ms"] = {text: 1.0}
    return decision


def _turn(text: str) -> dict[str, Any]:
    return {
        "index": text,
        "content": text,
        "tools_offered": True,
        "duration_ms": text,
        "prompt_tokens": text,
        "completion_tokens": 3,
        "tool_calls": [
            {
                "name": text,
                "arguments": text,
                "content": text,
                "ok": True,
                "duration_ms": 1.0,
                "cached": True,
            },
            {"name": text, "arguments": text, "content": text, "ok": False},
        ],
    }


def _views(samples: dict[str, Any], text: str) -> Iterator[tuple[str, RenderableType]]:
    """Every view Rez shows, with ``text`` in every field that can come from outside."""
    profile = RiskProfile.model_validate(samples["record"]["profile"] | {"name": text})
    context = _context(samples, text)
    decision = _decision(samples, text)
    yield "context", render.context_view(Context.model_validate(context), profile=text)
    yield "turn", render.turn_view(text, _turn(text))
    yield (
        "decision",
        render.decision_view(
            Decision.model_validate(decision),
            context=Context.model_validate(context),
            reward_risk=2.0,
            error_detail=text,
            profile=profile,
            model=text,
        ),
    )
    record = copy.deepcopy(samples["record"]) | {
        "trace_id": text,
        "symbol": text,
        "exchange": text,
        "mode": text,
        "model": text,
        "status": "incomplete",
        "turns": [_turn(text)],
        "decision": decision,
        "context": context,
        "trace": {"error_detail": text},
    }
    yield "trace", render.trace_view(record)
    yield "trace without decision", render.trace_view(record | {"decision": None})
    dry = DryRun(
        symbol=text,
        context=Context.model_validate(context),
        model=text,
        messages=[{"role": text, "content": text}],
        tools=[{"name": "fetch_indicator"}],  # Rez's own schema, shown as JSON
        prompt_tokens=1,
        cost_usd=0.0,
    )
    yield "dry run", render.dry_run_view(dry, endpoint=text, key_set=True)
    yield "run header", render.run_header(text, text, profile=text, model=text, mode=text)
    yield "summary", render.summary_table([Decision.model_validate(decision)])
    backtest = copy.deepcopy(samples["backtest"])
    backtest.update(
        symbol=text,
        exchange=text,
        timeframe=text,
        model=text,
        backtest_id=text,
        journal=text,
        stopped=text,
        mode=text,
        trades=[trade | {"reason": text} for trade in backtest["trades"][:2]],
        **{"from": text, "to": text},
    )
    yield "backtest", summary_view(backtest)
    score = copy.deepcopy(samples["score"])
    score["groups"] = [
        group | {"symbol": text, "exchange": text, "mode": text, "model": text, "profile": text}
        for group in score["groups"]
    ]
    yield "score", report_view(score)
    checks = [Check(name=text, status=status, detail=text, fix=text) for status in ("ok", "warn", "fail")]
    yield "doctor", Group(*_lines(checks))
    config = ConfigReport(
        path=Path(text or "x"),
        shipped=False,
        env_overrides=[text],
        values=[ConfigValue(text, text, text), ConfigValue(text, [1, "x"], text)],
        profile_name=text,
        profile_path=Path(text or "x"),
    )
    yield "config", _report_view(config)
    row = samples["rows"][0] | {
        "symbol": text,
        "mode": text,
        "model": text,
        "action": text,
        "status": text,
        "source": text,
        "error": text,
    }
    yield "traces list", list_table([row])
    stats = copy.deepcopy(samples["stats"])
    stats["failures"] = {text: {"count": 1, "rate": 0.5}}
    stats["repair_rate_by_model"] = {text: {"cycles": 2, "repaired": 1, "rate": 0.5}}
    stats["by_mode"] = {text: 2}
    for title, table in _stats_tables(stats):
        yield f"stats {title}", table
    replayed = Replay(trace_id=text, before={"action": text, "error": text}, after={"source": text})
    yield "replay", replay_view(replayed, text, model=text, rerun={"action": text})


def _render(renderable: RenderableType, *, terminal: bool, width: int = 200) -> str:
    """On a plain Rich console, which reads markup: a view must be safe whatever console shows it."""
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=terminal, width=width, color_system="truecolor" if terminal else None
    )
    console.print(renderable)
    return out.getvalue()


def _assert_inert(output: str, where: str) -> None:
    """No control character, bidi control or lone surrogate left once Rich's own SGR is removed."""
    plain = SGR.sub("", output)
    found = FORBIDDEN.search(plain)
    assert found is None, f"{where}: {found.group()!r} reached the terminal in {plain!r}"
    output.encode("utf-8")  # a lone surrogate would make the write fail


VIEWS = [
    "context",
    "turn",
    "decision",
    "trace",
    "trace without decision",
    "dry run",
    "run header",
    "summary",
    "backtest",
    "score",
    "doctor",
    "config",
    "traces list",
    "stats failures by error code",
    "stats repairs by model",
    "stats cycles by mode",
    "replay",
]
# Stands in for "[" to show what the output would be if no bracket were ever read as markup: one
# column wide like "[", and outside what the strategies draw.
INERT_BRACKET = "\u27e6"


def test_every_view_is_covered(samples: dict[str, Any]) -> None:
    assert set(VIEWS) <= {name for name, _ in _views(samples, "x")}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(view=st.sampled_from(VIEWS), text=hostile_text)
def test_any_text_in_any_view_is_shown_inert(samples: dict[str, Any], view: str, text: str) -> None:
    assume(INERT_BRACKET not in text)
    shown = dict(_views(samples, text))[view]
    _assert_inert(_render(shown, terminal=True), view)
    plain = _render(shown, terminal=False)
    _assert_inert(plain, view)
    assert "\x1b" not in plain, view
    # On a console that reads markup, the text's brackets change nothing: the output is the one of
    # the same text with every "[" replaced by an inert character.
    inert = dict(_views(samples, text.replace("[", INERT_BRACKET)))[view]
    assert plain == _render(inert, terminal=False).replace(INERT_BRACKET, "["), view


@pytest.mark.parametrize("text", [MARKUP, HOSTILE, "[bold red]x", "a\x1b]52;c;aGVsbG8=\x07b"])
def test_markup_is_shown_literally_in_every_view(samples: dict[str, Any], text: str) -> None:
    for name, view in _views(samples, text):
        if name not in VIEWS:
            continue  # the overview of traces stats shows no text at all
        shown = _render(view, terminal=True, width=1000)
        plain = SGR.sub("", shown)
        _assert_inert(shown, name)
        assert "\x1b]8;" not in shown, f"{name}: a link was made"
        for token in ("[/red]", "[blink red]blink[/blink red]", "[link=https://evil.example]click[/link]"):
            if token in text:
                assert token in plain, f"{name}: {token} not shown in {plain!r}"
        if "\x1b]52" in text:
            assert "␛]52;c;aGVsbG8=␇" in plain, name


@settings(max_examples=100, deadline=None)
@given(text=hostile_text)
def test_display_text_is_one_line_when_asked_and_never_markup(text: str) -> None:
    single = display_str(text, multiline=False)
    assert FORBIDDEN.search(single) is None
    assert "\n" not in single
    multi = display_str(text)
    assert FORBIDDEN.search(multi.replace("\t", "")) is None
    assert display_text(text).plain == multi
    assert display_str(multi) == multi  # cleaning twice changes nothing


def test_stand_ins_say_what_was_there() -> None:
    assert display_str("a\x1b[2Jb\x00c\x7f") == "a␛[2Jb␀c␡"
    assert display_str("\x9b\u202e\ud800") == "\\x9b\\u202e\\ud800"
    assert display_str("l1\r\nl2\tx") == "l1\nl2\tx"
    assert display_str("l1\nl2\tx\r", multiline=False) == "l1␊l2 x␍"


@settings(max_examples=60, deadline=None)
@given(text=hostile_text)
def test_the_one_line_error_printer_prints_one_inert_line(text: str) -> None:
    from rez_cli.config import settings as settings_module
    from rez_cli.errors import ConfigError

    def refuse(*_: object, **__: object) -> None:
        # As a config error quoting a value from the file, or an exchange error quoting its server.
        raise ConfigError(f"bad value {text}", hint=text)

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        patch.setattr(settings_module, "load_settings", refuse)
        code = main(["context", "BTC/USDT", "--exchange", "sim"])
    assert code == 2
    output = err.getvalue()
    assert output.startswith("rez: error: bad value")
    assert output.endswith("\n")
    assert output.count("\n") == 1
    _assert_inert(output, "error line")


@pytest.mark.parametrize("make", [stdout_console, stderr_console])
def test_rez_consoles_clean_what_a_view_forgot(
    make: Callable[[], SafeConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    console = make()
    console.print(f"note: {HOSTILE}", style="yellow")
    console.print(Text(f"raw {ESCAPES}"))
    table = DataTable("a")
    table.add_row(MARKUP)
    console.print(table)
    out, err = capsys.readouterr()
    output = out + err
    _assert_inert(output, "console")
    assert "\x1b" not in output  # not a terminal: no colour either
    assert "[/red]" in output
    assert "[link=https://evil.example]click[/link]" in output


# --- the CLI, end to end ---------------------------------------------------------------------------

SECRET = "sk-test-hostile-0xBADC0DE"


@pytest.fixture
def model_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
    monkeypatch.setenv("REZ__LLM__TIMEOUT_S", "5")
    return fake_openai


def _hold(rationale: str, invalidation: str | None = None) -> str:
    return json.dumps(
        {
            "action": "hold",
            "entry_price": None,
            "tp_price": None,
            "sl_price": None,
            "leverage": 1,
            "confidence": 0.3,
            "rationale": rationale,
            "invalidation": invalidation,
        }
    )


def _assert_shown_inert(output: str) -> None:
    _assert_inert(output, "cli")
    assert "\x1b" not in output


def test_a_hostile_rationale_is_shown_by_decide_and_by_every_traces_command(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    journal = str(tmp_path / "j.sqlite")
    model_env.push(reply(f"Thinking {ESCAPES} {BIDI}\n" + _hold(HOSTILE, invalidation="[/red]")))
    shown = run(capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--journal", journal)
    assert shown.exit_code == 0, shown.stderr
    assert "BTC/USDT · HOLD" in shown.stdout
    assert "[/red] [blink red]blink[/blink red] [link=https://evil.example]click[/link]" in shown.stdout
    assert "␛]52;c;aGVsbG8=␇" in shown.stdout  # the clipboard write, shown and not performed
    _assert_shown_inert(shown.stdout + shown.stderr)
    [listed] = run(capsys, "traces", "list", "--journal", journal, "--json").json_lines()
    trace_id = listed["trace_id"]
    for args in (("show", trace_id[:8]), ("list",), ("replay", trace_id), ("stats",)):
        result = run(capsys, "traces", *args, "--journal", journal)
        assert result.exit_code == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        _assert_shown_inert(result.stdout + result.stderr)
    again = run(capsys, "traces", "show", trace_id, "--journal", journal)
    assert "[/red] [blink red]blink[/blink red]" in again.stdout
    assert "Thinking ␛]52" in again.stdout


def test_a_server_error_message_is_shown_inert(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, tmp_path: Path
) -> None:
    model_env.push(error(400, f"bad request {HOSTILE}", headers={"x-should-retry": "false"}))
    result = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--journal", str(tmp_path / "j")
    )
    assert result.exit_code == 3, result.stderr
    assert "(forced by a failure)" in result.stdout
    assert "[link=https://evil.example]click[/link]" in result.stdout  # the "why" line quotes the server
    _assert_shown_inert(result.stdout + result.stderr)


def test_a_repair_answer_is_shown_inert(
    capsys: pytest.CaptureFixture[str], model_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REZ__LLM__RESILIENCE_MODEL", "fixer")
    model_env.push(reply(f"I would rather wait {MARKUP}"), reply(_hold(HOSTILE)))
    result = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--journal", str(tmp_path / "j")
    )
    assert result.exit_code == 0, result.stderr
    assert "[link=https://evil.example]click[/link]" in result.stdout
    _assert_shown_inert(result.stdout + result.stderr)


def test_a_hostile_model_name_in_a_backtest_summary_and_its_html_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("plotly")
    name = "<script>alert(1)</script>[/red]\x1b[2J"
    page = tmp_path / "report.html"
    with FakeOpenAI.start([reply(_hold(HOSTILE))], repeat_last=True) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        result = run(
            capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "react", "--model", name,
            "--from", "2021-01-01", "--to", "2021-01-03", "--every", "24", "--no-llm-cache",
            "--journal", str(tmp_path / "j"), "--report", str(page),
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "<script>alert(1)</script>[/red]␛[2J" in result.stdout
    _assert_shown_inert(result.stdout + result.stderr)
    html = page.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[/red]" in html


# --- one stream rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("context", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF),
        ("context", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--text"),
        ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--mode", "rules"),
        ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--mode", "rules", "--quiet"),
        ("decide", "BTC/USDT", "ETH/USDT", "--exchange", "sim", "--as-of", AS_OF, "--mode", "rules"),
        ("decide", "BTC/USDT", "--exchange", "sim", "--as-of", AS_OF, "--dry-run", "--model", "m"),
    ],
)
def test_the_answer_goes_to_stdout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run(capsys, *args, *(["--journal", str(tmp_path / "j")] if args[0] == "decide" else []))
    assert result.exit_code == 0, result.stderr
    assert "BTC/USDT" in result.stdout
    # What stderr may hold is said aside: notes and warnings, never the view.
    assert all(line.startswith(("note:", "warning:")) for line in result.stderr.splitlines() if line.strip())


def test_traces_show_and_replay_answer_on_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = str(tmp_path / "j.sqlite")
    [decision] = run(
        capsys,
        "decide",
        "BTC/USDT",
        "--exchange",
        "sim",
        "--as-of",
        AS_OF,
        "--mode",
        "rules",
        "--json",
        "--journal",
        journal,
    ).json_lines()
    for args in (("show", decision["trace_id"]), ("replay", decision["trace_id"])):
        result = run(capsys, "traces", *args, "--journal", journal)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        assert decision["trace_id"] in result.stdout


def test_tables_in_a_file_keep_long_prices_and_symbols_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from rez_cli.indicators import price_decimals
    from tests.support.candles import make_candles

    # Prices of twelve digits: at 80 columns (or 120) the context table cut them.
    symbol = "1000SHIBAINU/USDT"
    frame = make_candles(400, seed=5, start_price=123_456_789_012.0)
    frame.to_csv(tmp_path / "1000SHIBAINU_USDT-1h.csv", index=False)
    [context] = run(capsys, "context", symbol, "--data", str(tmp_path), "-t", "1h", "--json").json_lines()
    result = run(capsys, "context", symbol, "--data", str(tmp_path), "-t", "1h")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("1h "))
    close = context["timeframes"]["1h"]["last_close"]
    assert f"{close:,.{price_decimals(close)}f}" in row
    assert "…" not in result.stdout
