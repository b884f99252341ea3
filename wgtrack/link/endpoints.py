"""What a re-resolution finds and applying it: the address to set (the current family first,
rotating through the records), and the endpoint set (a roam wgtrack made, told once)."""

from __future__ import annotations

import ipaddress

from wgtrack.link.messages import (
    Action,
    EndpointChanged,
    Probe,
    ResolveFailed,
    ResolveResult,
    SetEndpoint,
    SetEndpointResult,
    TriggerHandshake,
)
from wgtrack.link.state import LinkState, is_down, replace
from wgtrack.model import split_endpoint

Result = tuple[LinkState, list[Action]]


def _family(address: str) -> int:
    return ipaddress.ip_address(address.split("%", 1)[0]).version


def _format_endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if _family(address) == 6 else f"{address}:{port}"


def choose_address(addresses: tuple[str, ...], current: str | None) -> str | None:
    """Pick the address to apply: the current endpoint's family first; rotate past the
    current address when there are several, so repeated failures try every record."""
    current_host: str | None = None
    if current:
        try:
            current_host = split_endpoint(current)[0]
        except ValueError:
            current_host = None
    family = _family(current_host) if current_host else 4
    ordered = [a for a in addresses if _family(a) == family] + [a for a in addresses if _family(a) != family]
    if not ordered:
        return None
    if current_host in ordered:
        return ordered[(ordered.index(current_host) + 1) % len(ordered)]
    return ordered[0]


def on_resolve(state: LinkState, r: ResolveResult) -> Result:
    state = replace(state, resolving=False)
    sample = state.last_sample
    if sample is None or sample.hostname is None or sample.port is None or not is_down(state):
        return state, []  # the link came back meanwhile, or is no longer eligible
    if r.error is not None or not r.addresses:
        return state, [ResolveFailed(f"{sample.hostname}: {r.error or 'no addresses'}")]
    address = choose_address(r.addresses, state.endpoint)
    if address is None:
        return state, [ResolveFailed(f"{sample.hostname}: no usable address")]
    endpoint = _format_endpoint(address, sample.port)
    if endpoint == state.endpoint:
        return state, []  # same address: nothing to apply
    return (replace(state, setting_endpoint=endpoint, setting_from=state.endpoint),
            [SetEndpoint(endpoint, state.endpoint)])


def on_set(state: LinkState, r: SetEndpointResult) -> Result:
    if not r.ok:
        return replace(state, setting_endpoint=None), [ResolveFailed(f"setting endpoint {r.endpoint} failed: "
                                                                     f"{r.error}")]
    old = state.setting_from if state.setting_endpoint == r.endpoint else state.endpoint
    state = replace(state, endpoint=r.endpoint, setting_endpoint=None, setting_from=None)
    actions: list[Action] = [EndpointChanged(old, r.endpoint)]
    sample = state.last_sample
    # Setting an endpoint sends nothing; a packet into the tunnel starts the handshake now.
    if sample and sample.probe_target:
        actions.append(Probe(sample.probe_target))
    elif sample and sample.handshake_target:
        actions.append(TriggerHandshake(sample.handshake_target))
    return state, actions
