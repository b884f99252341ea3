"""An output is one module that declares its ``SPEC`` plus one line in the registry: shown
here with a toy output declared in this very module, which the config then parses, describes,
validates, and the runner starts and feeds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

from tests.snapshots import snapshot
from wgtrack import checkconfig, config
from wgtrack.outputs import Output, registry
from wgtrack.outputs.runner import Outputs
from wgtrack.schema import OutputSpec, enabled_key, nonempty, output_key
from wgtrack.snapshot import Snapshot

# ---- the toy output: everything an output declares, in one place ----


@dataclass(frozen=True, slots=True)
class ToySettings:
    greeting: str = ""
    secret: str | None = None
    enabled: bool = True


class Toy(Output):
    published: ClassVar[list[Snapshot]] = []  # every instance's, for the test to read

    def __init__(self, section: str, settings: ToySettings) -> None:
        self.name, self.settings = section, settings

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def publish(self, snapshot: Snapshot) -> None:
        Toy.published.append(snapshot)

    async def close(self) -> None:
        return None


SCOPE = "output:toy"
SPEC = OutputSpec(SCOPE, ToySettings, (
    output_key("greeting", "greeting", nonempty, SCOPE, "what the toy says"),
    output_key("secret", "secret", nonempty, SCOPE, "never shown", secret=True),
    enabled_key(SCOPE),
), Toy, required=("greeting",))


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one line in the registry."""
    monkeypatch.setattr(registry, "OUTPUTS", (*registry.OUTPUTS, (SCOPE, __name__)))


def test_a_toy_output_is_parsed_described_and_run(toy_registered: None) -> None:
    cfg = config.parse("[output:toy]\ngreeting = hello\nsecret = s3cr3t\n", "toy.conf")
    assert cfg.output(SCOPE, ToySettings) == ToySettings(greeting="hello", secret="s3cr3t")
    text = checkconfig.describe(cfg)
    assert "[output:toy] greeting = hello, secret = set, enabled = True" in text and "s3cr3t" not in text
    Toy.published.clear()

    async def run() -> None:
        outputs = Outputs(lambda: None)
        await outputs.start(cfg)
        outputs.offer(snapshot())
        await outputs.close(2.0)

    asyncio.run(run())
    assert len(Toy.published) == 1


def test_a_toy_output_s_keys_are_validated_like_any_other(toy_registered: None) -> None:
    with pytest.raises(config.ConfigError) as bad:
        config.parse("[output:toy]\nsecret = s3cr3t\nvolume = 11\n", "toy.conf")
    assert [str(p) for p in bad.value.problems] == [
        "toy.conf:3: [output:toy] volume = '11': unknown key",
        "toy.conf:1: [output:toy] greeting: is required"]
    with pytest.raises(config.ConfigError, match=r"\[output:toy:two\]: unknown section"):
        config.parse("[output:toy:two]\ngreeting = hi\n", "toy.conf")  # it does not repeat


def test_every_registered_module_declares_its_own_section() -> None:
    for scope, _module in registry.OUTPUTS:
        assert registry.spec(scope).scope == scope


def test_an_output_that_is_not_configured_is_not_imported() -> None:
    """The spec lives with the output, yet a config without the section costs its module no
    memory: the registry imports a module only when its section is used."""
    code = ("import sys; from wgtrack import config; config.parse('[output:json]\\n'); "
            "print(sorted(m for m in sys.modules if m.startswith('wgtrack.outputs.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == str(["wgtrack.outputs.influx_file", "wgtrack.outputs.json_status",
                                      "wgtrack.outputs.registry"])
