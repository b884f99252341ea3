"""Degraded: up, but not well. The link carries traffic, so it is no down link, but it loses
packets, is slow, or drops packets above some size (a path-MTU black hole).

Loss and latency come from the caller's 5-minute window of echoes; a link enters up:degraded
when one of them has stayed past its threshold for ``DEGRADE_ENTER_S``, and leaves it when
every measure has stayed within its threshold for ``DEGRADE_LEAVE_S``. The two times differ so
that a link near a threshold does not flap between up:ok and up:degraded (docs/link-state.md,
"Degraded"). A path MTU below the tunnel's is the verdict of a search confirmed by several
probes, not a noisy ratio: it enters at once.
"""

from __future__ import annotations

from wgtrack.link.messages import Action, Measured
from wgtrack.link.moves import move
from wgtrack.link.settings import DEGRADE_ENTER_S, DEGRADE_LEAVE_S, MIN_WINDOW_ECHOES, LinkSettings
from wgtrack.link.state import LinkState, replace
from wgtrack.link.table import Status, Target, Verdict

Details = tuple[tuple[str, str | int | float], ...]
CAUSES = ("mtu", "loss", "latency")  # in the order they are weighed: the first past its threshold is the cause


def past_threshold(m: Measured, s: LinkSettings) -> tuple[str | None, str, Details]:
    """The first measure past its threshold, as (cause, reason, details); (None, "", ()) when
    every one is within its threshold or cannot say."""
    if m.path_mtu is not None and m.mtu is not None and m.path_mtu < m.mtu:
        return "mtu", (f"path MTU {m.path_mtu}: inner packets over {m.path_mtu} bytes are lost (tunnel MTU {m.mtu}); "
                       f"set MTU = {m.path_mtu} on both ends"), (("cause", "mtu"), ("path_mtu", m.path_mtu),
                                                                  ("mtu", m.mtu))
    if s.degraded_loss > 0 and m.loss is not None and m.echoes >= MIN_WINDOW_ECHOES and m.loss >= s.degraded_loss:
        return "loss", f"loss {m.loss:.1%} over 5 min (degraded_loss {s.degraded_loss:g})", (
            ("cause", "loss"), ("loss", round(m.loss, 4)), ("echoes", m.echoes))
    if s.degraded_rtt_ms > 0 and m.rtt_ms is not None and m.rtt_ms > s.degraded_rtt_ms:
        return "latency", f"median RTT {m.rtt_ms:.1f} ms over 5 min (degraded_rtt {s.degraded_rtt_ms:g} ms)", (
            ("cause", "latency"), ("rtt_ms", round(m.rtt_ms, 3)))
    return None, "", ()


def on_measured(state: LinkState, m: Measured, now: float, settings: LinkSettings) -> tuple[LinkState, list[Action]]:
    """Weigh one measurement of an up link against its thresholds and the time they have held."""
    status = state.status
    if status is not Status.UP and status is not Status.DEGRADED:
        return replace(state, health_since=None), []  # down or idle: there is no quality to speak of
    if state.target is not Target.ANSWERS:
        # A target that never answered, or went silent while handshakes complete, loses every
        # echo: that is no loss of the link (the handshakes judge it), and no RTT either.
        m = Measured(path_mtu=m.path_mtu, mtu=m.mtu)
    cause, why, details = past_threshold(m, settings)
    since = now if state.health_since is None else state.health_since
    if status is Status.UP:
        if cause is None:
            return replace(state, health_since=None), []
        if cause != "mtu" and now - since < DEGRADE_ENTER_S:
            return replace(state, health_since=since), []
        state, actions = move(state, Verdict.DEGRADED, now, why, details=details)
        return replace(state, degraded=cause), actions
    if cause is not None:  # still degraded; the cause may be another by now
        return replace(state, degraded=cause, health_since=None), []
    if now - since < DEGRADE_LEAVE_S:
        return replace(state, health_since=since), []
    return move(state, Verdict.RECOVERED, now, f"every measure within its threshold for {DEGRADE_LEAVE_S / 60:.0f} min",
                details=(("cause", state.degraded or ""),))
