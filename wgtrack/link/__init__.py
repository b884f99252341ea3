"""The per-peer link state machine: pure, no I/O, time passed in; it imports nothing from the
rest of wgtrack but the dump's plain records (``wgtrack.model``).

- ``table``: the states, the verdicts and ``TRANSITIONS``, keyed by (status, verdict): the spec.
- ``rules``: evidence to verdict (what a dump sample says; the re-resolution schedule).
- ``machine``: ``step(state, observation, now, settings) -> (state, actions)``.
- ``health``: up:ok or up:degraded, from the measured quality of an up link.
- ``fast``: the fast paths a hub needs (``unchanged``, ``timeless``, ``tick_due``), asked of the
  same rules and table.
- ``messages``, ``state``, ``settings``: the values it is told, keeps, answers and reads.
"""

from wgtrack.link.endpoints import choose_address
from wgtrack.link.fast import tick_due, timeless, unchanged, urgent
from wgtrack.link.machine import step
from wgtrack.link.messages import (
    EFFECTS,
    Action,
    Changed,
    Diagnosed,
    Effect,
    EndpointChanged,
    Measured,
    MtuResult,
    Observation,
    Probe,
    ProbeResult,
    ProbeUnderlay,
    Resolve,
    ResolveFailed,
    ResolveResult,
    Roamed,
    Sample,
    SearchMtu,
    Seen,
    SetEndpoint,
    SetEndpointResult,
    TargetVerdict,
    Tick,
    TriggerHandshake,
    UnderlayResult,
)
from wgtrack.link.rules import cycles_to_next_resolve, down_gap
from wgtrack.link.settings import (
    DOWN_FAST_S,
    DOWN_PROBE_CAP_S,
    HANDSHAKE_MARGIN_S,
    KNOCK_GRACE_S,
    SESSION_S,
    UNDERLAY_PERIOD_S,
    LinkSettings,
    stale_limit,
)
from wgtrack.link.state import LinkState, make_state, replace
from wgtrack.link.table import TRANSITIONS, VERDICT_MEANING, Status, Target, UndeclaredTransition, Verdict, lookup

__all__ = [
    "DOWN_FAST_S",
    "DOWN_PROBE_CAP_S",
    "EFFECTS",
    "HANDSHAKE_MARGIN_S",
    "KNOCK_GRACE_S",
    "SESSION_S",
    "TRANSITIONS",
    "UNDERLAY_PERIOD_S",
    "VERDICT_MEANING",
    "Action",
    "Changed",
    "Diagnosed",
    "Effect",
    "EndpointChanged",
    "LinkSettings",
    "LinkState",
    "Measured",
    "MtuResult",
    "Observation",
    "Probe",
    "ProbeResult",
    "ProbeUnderlay",
    "Resolve",
    "ResolveFailed",
    "ResolveResult",
    "Roamed",
    "Sample",
    "SearchMtu",
    "Seen",
    "SetEndpoint",
    "SetEndpointResult",
    "Status",
    "Target",
    "TargetVerdict",
    "Tick",
    "TriggerHandshake",
    "UndeclaredTransition",
    "UnderlayResult",
    "Verdict",
    "choose_address",
    "cycles_to_next_resolve",
    "down_gap",
    "lookup",
    "make_state",
    "replace",
    "stale_limit",
    "step",
    "tick_due",
    "timeless",
    "unchanged",
    "urgent",
]
