"""The machine's state record: ``copy_with`` is ``_replace`` made cheaper (and sets the rarely
set fields in the shared part, ``more``), and ``replace`` keeps the very same object when
nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgtrack.link.state import FIELDS, NO_MORE, LinkMore, LinkState, copy_with, make_state, replace

CORE = tuple(name for name in LinkState._fields if name != "more")


# A loaded CI machine made generating these slow once (a health check, not the property)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), st.integers(), st.floats(), st.text()),
                       max_size=6))
def test_copy_with_is_replace(changes: dict[str, Any]) -> None:
    """Every field reads back what was set, every other one what it was: as ``_replace`` on
    a record of all of them (the core's and LinkMore's) would give."""
    state = LinkState()
    made = copy_with(state, **changes)
    assert type(made) is LinkState and type(made.more) is LinkMore
    expected = {**{name: getattr(state, name) for name in FIELDS}, **changes}
    assert {name: getattr(made, name) for name in FIELDS} == expected
    core = {name: value for name, value in changes.items() if name in CORE}
    assert made._replace(more=NO_MORE) == state._replace(**core)


def test_alike_rare_parts_are_the_one_shared_object() -> None:
    """A peer whose rarely set fields are back as they start shares NO_MORE again (the 104 B a
    hub's peer saves); one with any set has a part of its own."""
    state = make_state(status=None, resolves=2, degraded="loss")
    assert state.resolves == 2 and state.degraded == "loss" and state.more is not NO_MORE
    assert LinkState().more is NO_MORE
    back = copy_with(state, resolves=0, degraded=None)
    assert back.more is NO_MORE and back == LinkState()
    assert replace(back, quiet_cycles=0) is back  # nothing changed: the same object


def test_replace_keeps_the_same_object_when_nothing_changes() -> None:
    state = LinkState()
    assert replace(state, rtt_ms=state.rtt_ms) is state
    assert replace(state, rtt_ms=12.5).rtt_ms == 12.5


def test_a_field_it_lacks_is_refused() -> None:
    with pytest.raises(KeyError):
        copy_with(LinkState(), no_such_field=1)
