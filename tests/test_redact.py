"""The one redactor for outside text: keys, control characters and length."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wgtrack.redact import MAX_TEXT, redact_text, redact_url

KEY = "kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY="
HEX = "ab" * 32


def test_keys_in_base64_and_hex_are_removed() -> None:
    text = f"Unable to modify interface: key {KEY} and {HEX} are wrong"
    out = redact_text(text)
    assert KEY not in out and HEX not in out and KEY[:20] not in out
    assert out == "Unable to modify interface: key <redacted> and <redacted> are wrong"


def test_control_characters_and_newlines_cannot_forge_log_lines() -> None:
    assert redact_text("a\nINFO fake line\r\n\x1b[31mred\x00") == "a; INFO fake line; \\x1b[31mred\\x00"


@given(st.text(max_size=5000))
def test_output_is_bounded_and_single_line(text: str) -> None:
    out = redact_text(text)
    assert len(out) <= MAX_TEXT and "\n" not in out and "\r" not in out


def test_url_keeps_only_scheme_host_and_port() -> None:
    assert redact_url("https://user:pw@hooks.example.net:8443/T0KEN/x?token=Q") == "https://hooks.example.net:8443"
    assert redact_url("http://[::1:bad") == "<unparsable URL>"
