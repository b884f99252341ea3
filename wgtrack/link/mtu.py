"""When a link's path MTU is searched: when the link comes up, then every ``mtu_interval``
(every MTU_SHORT_RECHECK_S while a search found it short), only while it is up, its probe
target answers and no probe is failing. The search itself (DF probes, the binary search) is
the caller's (``wgtrack.pmtu``); what its result means is for ``health``, told by the caller
with the window's figures."""

from __future__ import annotations

from wgtrack.link.messages import Action, MtuResult, Sample, SearchMtu
from wgtrack.link.settings import MTU_SHORT_RECHECK_S, LinkSettings
from wgtrack.link.state import LinkState, probing, replace
from wgtrack.link.table import Target

Result = tuple[LinkState, list[Action]]


def due(state: LinkState, s: Sample, now: float, settings: LinkSettings) -> Result:
    """A search, if one is due for this up link."""
    status = state.status
    if settings.mtu_interval_s <= 0 or status is None or not status.is_up or state.target is not Target.ANSWERS \
            or state.probe_failures or not probing(s, settings):
        return state, []
    interval = min(MTU_SHORT_RECHECK_S, settings.mtu_interval_s) if state.mtu_short else settings.mtu_interval_s
    if now - state.mtu_at < interval:
        return state, []
    return replace(state, mtu_at=now), [SearchMtu(s.probe_target or "")]


def on_result(state: LinkState, r: MtuResult) -> Result:
    short = r.path_mtu is not None and r.mtu is not None and r.path_mtu < r.mtu
    return replace(state, mtu_short=short), []
