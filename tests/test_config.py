"""Config: 0.2.0 files keep working, overrides apply, bad input names file/section/key/value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from wgtrack import checkconfig, config
from wgtrack.config import ConfigError, TrackSettings
from wgtrack.outputs.influx_file import InfluxFileSettings
from wgtrack.outputs.webhook import WebhookSettings

KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

# A config as wgtrack 0.2.0 documents it (every key it knows, numeric loglevel).
V020 = """
[general]
cycle_time = 30
ping_interval = 2
ping_failafternum = 2
cycles_wait = 2
cycles_checking = 4
cycles_checkperiod = 2
cycles_slowcheckingperiod = 20
loglevel = 20

[interface:wg0]

[output:influx]
filename = /var/cache/wg-track_influx.out
"""


def test_defaults_are_those_of_020() -> None:
    cfg = config.parse("")
    assert cfg.cycle_time_s == 30
    assert cfg.loglevel == logging.INFO
    t = cfg.track
    assert (t.ping_interval, t.ping_failafternum, t.cycles_wait, t.cycles_checking, t.cycles_checkperiod,
            t.cycles_slowcheckingperiod) == (2, 2, 2, 4, 2, 20)
    assert cfg.output("output:influx", InfluxFileSettings) == \
        InfluxFileSettings(filename=Path("/var/cache/wg-track_influx.out"))
    assert cfg.wg_command == "wg" and cfg.wg_config_dir == Path("/etc/wireguard")


def test_020_file_is_accepted_with_same_meaning() -> None:
    cfg = config.parse(V020, "wgtrack.conf")
    default = config.parse("", "wgtrack.conf")
    assert cfg.track == default.track and cfg.outputs == default.outputs
    assert (cfg.cycle_time_s, cfg.loglevel) == (default.cycle_time_s, default.loglevel)
    assert cfg.settings_for("wg0", KEY) == default.track  # the empty [interface:wg0] changes nothing


def test_default_section_applies_and_general_wins() -> None:
    cfg = config.parse("[DEFAULT]\ncycle_time = 10\ncycles_wait = 5\nfilename = /tmp/x.out\n"
                       "[general]\ncycles_wait = 7\n")
    assert cfg.cycle_time_s == 10
    assert cfg.track.cycles_wait == 7
    assert cfg.output("output:influx", InfluxFileSettings) == InfluxFileSettings(filename=Path("/tmp/x.out"))


@pytest.mark.parametrize("text,level", [("debug", 10), ("INFO", 20), ("40", 40), ("warning", 30)])
def test_loglevel_names_and_numbers(text: str, level: int) -> None:
    assert config.parse(f"[general]\nloglevel = {text}\n").loglevel == level


def test_interface_and_peer_overrides_layer() -> None:
    cfg = config.parse(f"[general]\nping_interval = 3\ncycles_wait = 4\n"
                       f"[interface:wg1]\nping_interval = 0\ncycles_wait = 1\n"
                       f"[peer:{KEY}]\ncycles_wait = 9\nping_target = 192.0.2.7\n")
    assert cfg.settings_for("wg0", "x") == TrackSettings(ping_interval=3, cycles_wait=4)
    assert cfg.settings_for("wg1", "x") == TrackSettings(ping_interval=0, cycles_wait=1)
    assert cfg.settings_for("wg1", KEY) == TrackSettings(ping_interval=0, cycles_wait=9, ping_target="192.0.2.7")
    assert cfg.settings_for("wg0", KEY).ping_interval == 3


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "/etc/wgtrack.conf")
    return [str(p) for p in info.value.problems]


def test_zero_checkperiod_names_file_section_key_value() -> None:
    assert errors("[general]\ncycles_checkperiod = 0\n") == [
        "/etc/wgtrack.conf:2: [general] cycles_checkperiod = '0': must be 1 or more"]


def test_a_bad_schedule_is_reported_beside_a_bad_key() -> None:
    """The settings' cross-checks run whatever else is wrong (0.3.0 ran them only on an
    otherwise clean file, so a fix revealed the next problem)."""
    found = errors("[general]\nbogus = 1\ncycles_checkperiod = 5\ncycles_slowcheckingperiod = 2\n")
    assert [f.split(": ", 2)[1:] for f in found] == [
        ["[general] bogus = '1'", "unknown key"],
        ["[general] cycles_slowcheckingperiod = '2'", "must be at least cycles_checkperiod (5)"]]


def test_every_problem_is_reported_at_once() -> None:
    found = errors(f"[general]\ncycle_time = fast\nbogus = 1\nping_target = 192.0.2.1\n[nonsense]\n"
                   f"[peer:short]\n[interface:wg0]\nloglevel = debug\n[peer:{KEY}]\nping_target = nohost\n")
    assert found == [
        "/etc/wgtrack.conf:2: [general] cycle_time = 'fast': not a number",
        "/etc/wgtrack.conf:3: [general] bogus = '1': unknown key",
        "/etc/wgtrack.conf:4: [general] ping_target = '192.0.2.1': not valid here (belongs in peer)",
        "/etc/wgtrack.conf:5: [nonsense]: unknown section (known: general, DEFAULT, interface:<name>, "
        "peer:<public key>, trigger:nflog, history, output:influx, output:json, output:webhook[:<name>], "
        "output:influxdb, output:alertmanager, output:stdout, output:prometheus)",
        "/etc/wgtrack.conf:6: [peer:short]: not a WireGuard public key (44 base64 characters)",
        "/etc/wgtrack.conf:8: [interface:wg0] loglevel = 'debug': not valid here (belongs in general)",
        f"/etc/wgtrack.conf:10: [peer:{KEY}] ping_target = 'nohost': not an IPv4 or IPv6 address",
    ]


def test_impossible_combinations() -> None:
    assert errors("[general]\ncycles_checkperiod = 5\ncycles_slowcheckingperiod = 3\n") == [
        "/etc/wgtrack.conf:3: [general] cycles_slowcheckingperiod = '3': must be at least cycles_checkperiod (5)"]
    found = errors("[general]\ncycle_time = 1\nping_interval = 1\nping_timeout = 0.5\n"
                   "[interface:wg0]\nping_timeout = 2\n")
    assert found[0].startswith(
        "/etc/wgtrack.conf:6: [interface:wg0] ping_timeout = '2.0': ping_count × ping_timeout")


def test_syntax_errors_and_duplicates_are_config_errors() -> None:
    assert errors("cycle_time = 3\n")[0].startswith("/etc/wgtrack.conf: line 1:")
    assert "cycle_time" in errors("[general]\ncycle_time = 3\ncycle_time = 4\n")[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.conf: cannot read: No such file"):
        config.load(tmp_path / "nope.conf")


def test_shipped_config_is_valid() -> None:
    cfg = config.load(Path(__file__).parent.parent / "etc" / "wgtrack.conf")
    assert cfg.cycle_time_s > 0


def test_describe_names_keys() -> None:
    text = checkconfig.describe(config.parse(f"[peer:{KEY}]\nping_target = 192.0.2.9\n"))
    assert "[general] cycle_time = 30.0" in text
    assert f"[peer:{KEY}] ping_target = 192.0.2.9" in text


def test_webhook_sections() -> None:
    cfg = config.parse("[output:webhook:ops]\nurl = https://hooks.example.test/T0KEN\nformat = slack\n"
                       "events = peer_down, peer_up\nheader_x_api_key = K3Y\nsecret = s3cr3t\n"
                       "[output:webhook]\nurl = http://127.0.0.1:9/x\n")
    (n1, plain), (n2, ops) = [(n, s) for n, s in cfg.outputs if isinstance(s, WebhookSettings)]
    assert (n1, n2) == ("output:webhook", "output:webhook:ops")
    assert ops.format == "slack" and ops.events == frozenset({"peer_down", "peer_up"})
    assert ops.headers == {"x-api-key": "K3Y"} and ops.secret == "s3cr3t"
    assert plain.events == frozenset() and plain.retries == 0
    text = checkconfig.describe(cfg)
    assert "T0KEN" not in text and "K3Y" not in text and "s3cr3t" not in text


def test_webhook_errors_never_echo_secrets() -> None:
    found = errors("[output:webhook]\nurl = ftp://T0KEN@x\nsecret =\nformat = pager\nevents = peer_gone\n")
    assert "T0KEN" not in "".join(found)
    assert "/etc/wgtrack.conf:2: [output:webhook] url = '(hidden)': must be an http:// or https:// URL with a host" \
        in found
    assert any("format = 'pager': must be one of json, slack, discord, teams" in f for f in found)
    assert any("unknown event kinds ['peer_gone']" in f for f in found)
    assert errors("[output:webhook:x]\nformat = slack\n") == [
        "/etc/wgtrack.conf:1: [output:webhook:x] url: is required"]


def test_numbers_have_bounds_with_reasons() -> None:
    assert errors("[general]\ncycle_time = 1e-9\n") == [
        "/etc/wgtrack.conf:2: [general] cycle_time = '1e-9': must be from 0.1 to 3600 s: faster only forks wg "
        "more often; slower is no monitoring"]
    assert errors("[general]\ncycle_time = 1e308\n")[0].endswith("must be from 0.1 to 3600 s: faster only forks "
                                                                  "wg more often; slower is no monitoring")


def test_paths_are_absolute_and_files_are_not_directories(tmp_path: Path) -> None:
    assert errors("[output:influx]\nfilename = out.lp\n")[0].startswith(
        "/etc/wgtrack.conf:2: [output:influx] filename = 'out.lp': must be an absolute path")
    assert errors(f"[output:json]\nfilename = {tmp_path}\n") == [
        f"/etc/wgtrack.conf:2: [output:json] filename = '{tmp_path}': is a directory; name the file to write"]


def test_headers_and_urls_are_checked() -> None:
    found = errors("[output:webhook]\nurl = http://x.test/a b\nheader_x_token = a\x01b\n")
    assert found == ["/etc/wgtrack.conf:2: [output:webhook] url = '(hidden)': a URL has no spaces or control "
                     "characters (percent-encode them)",
                     "/etc/wgtrack.conf:3: [output:webhook] header_x_token = '(hidden)': has a control character "
                     "(a header value is one line)"]
    assert errors("[output:webhook]\nurl = http://x.test:99999/\n")[0].startswith(
        "/etc/wgtrack.conf:2: [output:webhook] url = '(hidden)': not a valid URL")


def test_default_keys_that_no_section_can_use_are_named() -> None:
    assert errors("[DEFAULT]\nqueue_size = 5\n") == [
        "/etc/wgtrack.conf:2: [DEFAULT] queue_size = '5': no section takes it from [DEFAULT]: set it in "
        "[output:webhook]"]


def test_a_bom_is_accepted() -> None:
    assert config.parse("\ufeff[general]\ncycle_time = 5\n").cycle_time_s == 5


def test_the_nflog_trigger_is_parsed_and_shown_by_check_config() -> None:
    conf = config.parse("[trigger:nflog]\ngroup = 5\nmin_interval = 0.2\n")
    assert (conf.nflog_group, conf.nflog_min_interval_s) == (5, 0.2)
    assert "[trigger:nflog] group = 5, min_interval = 0.2" in checkconfig.describe(conf)
    assert "trigger:nflog" not in checkconfig.describe(config.parse(""))
    with pytest.raises(ConfigError) as missing:
        config.parse("[trigger:nflog]\nmin_interval = 1\n", "/etc/wgtrack.conf")
    assert str(missing.value) == "/etc/wgtrack.conf:1: [trigger:nflog] group: is required"
    with pytest.raises(ConfigError) as wrong:
        config.parse("[trigger:nflog]\ngroup = 70000\n", "/etc/wgtrack.conf")
    assert str(wrong.value) == "/etc/wgtrack.conf:2: [trigger:nflog] group = '70000': must be from 0 to 65535"
