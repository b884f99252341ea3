"""The machine's state record: ``copy_with`` is ``_replace`` made cheaper, and ``replace``
keeps the very same object when nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgtrack.link.state import LinkState, copy_with, replace

FIELDS = LinkState._fields


# A loaded CI machine made generating these slow once (a health check, not the property)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), st.integers(), st.floats(), st.text()),
                       max_size=6))
def test_copy_with_is_replace(changes: dict[str, Any]) -> None:
    state = LinkState()
    made = copy_with(state, **changes)
    assert type(made) is LinkState
    assert made == state._replace(**changes)


def test_replace_keeps_the_same_object_when_nothing_changes() -> None:
    state = LinkState()
    assert replace(state, rtt_ms=state.rtt_ms) is state
    assert replace(state, rtt_ms=12.5).rtt_ms == 12.5


def test_a_field_it_lacks_is_refused() -> None:
    with pytest.raises(KeyError):
        copy_with(LinkState(), no_such_field=1)
