"""What the link machine reads of the configuration, and WireGuard's timers it builds on.

The machine owns this type: the config's per-peer ``TrackSettings`` extends it with what only
the daemon reads (probe targets, checks, metrics), so the core imports nothing from config.
"""

from __future__ import annotations

from dataclasses import dataclass

# A handshake is renewed at least every REKEY_AFTER_TIME (120 s) on a link with traffic and
# a key is dead after REJECT_AFTER_TIME (180 s); keepalive silence and a margin come on top.
HANDSHAKE_MARGIN_S = 10.0
# WireGuard's REJECT_AFTER_TIME: past it no key is usable, so there is no session, and rx
# growth (handshake initiations, at most) says nothing about the link.
SESSION_S = 180.0
# When we sent a probe and no session exists, WireGuard initiates a handshake and retries
# every REKEY_TIMEOUT (5 s). Three tries without a completed handshake: the link is dead.
KNOCK_GRACE_S = 16.0
# A down peer is probed every cycle for its first minute down (recovery shows at once), then
# ever less often: every quarter of its time down, at most every DOWN_PROBE_CAP_S. On a hub
# with thousands of departed road warriors, each probe also makes WireGuard send handshake
# initiations to a dead address; a heal is still seen by the next handshake the peer completes.
DOWN_FAST_S = 60.0
DOWN_PROBE_CAP_S = 60.0
UNDERLAY_PERIOD_S = 60.0  # at most one underlay probe a minute per down peer
# Degraded (docs/link-state.md, "Degraded"): loss or latency must stay past its threshold for
# DEGRADE_ENTER_S, and every measure within its threshold for DEGRADE_LEAVE_S to recover. Both
# are read on the 5-minute window, so a burst of loss shorter than the entry time never counts.
# A path-MTU black hole is a verdict of its own search, confirmed by its probes: it enters at once.
DEGRADE_ENTER_S = 120.0
DEGRADE_LEAVE_S = 300.0
# Fewer echoes than this in the window say nothing of loss: 1 lost of 5 is not 20 % loss.
MIN_WINDOW_ECHOES = 20
# A path found short is searched again this often (not every mtu_interval): a fixed path is
# then seen within a minute, and its reason cleared DEGRADE_LEAVE_S later.
MTU_SHORT_RECHECK_S = 60.0


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """The per-peer settings the rules read (0.2.0's names where they come from 0.2.0)."""

    ping_interval: int = 2  # cycles between probes while up; 0 = no probes (0.2.0)
    ping_failafternum: int = 2  # consecutive failed probes before down (0.2.0)
    handshake_timeout_s: float = 180.0  # keepalive and a margin are added to this
    cycles_wait: int = 2
    cycles_checking: int = 4
    cycles_checkperiod: int = 2
    cycles_slowcheckingperiod: int = 20
    underlay_probe: bool = False  # probe a down peer's endpoint address outside the tunnel
    down_probe_interval_s: float = 1.0  # the fast lane for down peers; 0 = off
    probe_interval_s: float = 0.0  # seconds between probes of an up peer; 0 = ping_interval cycles
    # Echo requests of a probe that confirms a failure: down needs ping_failafternum failed
    # probes in a row, and each after the first is this many echoes unanswered (docs/link-state.md,
    # "Flapping": at 15 % loss a false down is rarer than once a month). 0: as 0.2.0, one probe
    # of ping_count.
    confirm_pings: int = 9
    ping_timeout_s: float = 1.0  # wait for each reply (when a failed probe was sent)
    degraded_loss: float = 0.05  # window loss at or above which a link is degraded; 0 = off
    degraded_rtt_ms: float = 0.0  # window median RTT above which it is degraded; 0 = off
    mtu_interval_s: float = 600.0  # path-MTU search of an up link: when it comes up, then this often; 0 = off


def stale_limit(settings: LinkSettings, keepalive_s: int) -> float:
    """Handshake age beyond which a link that should be refreshing its key is not."""
    return settings.handshake_timeout_s + keepalive_s + HANDSHAKE_MARGIN_S
