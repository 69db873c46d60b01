"""A trace's JSON, as the journal writes it: written in two parts (the context, the rest), it is the
very text of the whole, whatever the numbers and text in it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rez_cli.cycle.trace import Trace
from rez_cli.formatting import compact_json
from rez_cli.market.snapshot import Context
from rez_cli.reasoning.trace import ReasoningTrace


def _compact(value: Any) -> str | None:
    """The journal's JSON writer, held to json's reading of it: the same values, or None for NaN."""
    written = compact_json(value)
    try:
        expected = json.dumps(value, allow_nan=False)
    except ValueError:
        assert written is None
        return None
    assert written is not None
    assert json.dumps(json.loads(written)) == expected
    return written


@given(
    last_price=st.floats(allow_nan=True, allow_infinity=True),
    symbol=st.text(),
    context_text=st.none() | st.text(),
    mode=st.none() | st.text(),
    position=st.none() | st.text(),
    with_context=st.booleans(),
)
def test_a_traces_json_text_is_its_json_written_whole(
    last_price: float,
    symbol: str,
    context_text: str | None,
    mode: str | None,
    position: str | None,
    with_context: bool,
) -> None:
    context = Context(
        symbol=symbol,
        exchange="sim",
        as_of=1,
        last_price=last_price,
        simulated=True,
        primary_timeframe="1h",
        timeframes={},
    )
    trace = Trace(
        context=context if with_context else None,
        context_text=context_text,
        reasoning=ReasoningTrace(mode=mode),
        position=position,
    )
    whole = _compact(trace.to_json())
    assert trace.json_text() == whole
    if whole is None or not with_context:
        assert trace.context_json_text() is None
    else:
        assert trace.context_json_text() == _compact(context.model_dump(mode="json"))
        assert whole.startswith('{"context":' + str(trace.context_json_text()))
