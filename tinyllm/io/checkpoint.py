"""Training checkpoints: a folder of safetensors and JSON files, switched atomically by a manifest.

    DIR/manifest.json          written last; names the current folder and each file's size and SHA-256,
                               and carries a checksum of its own content
    DIR/step-000200-1a2b3c4d/
        model.safetensors      the weights
        optimizer.safetensors  the optimizer's moment arrays
        config.json            the model config (with "model_type")
        tokenizer.json         the tokenizer (`Tokenizer.to_dict()`)
        state.json             step, RNG state, data position, training config, optimizer scalars

Saving writes a new step folder (every file fsynced), then replaces manifest.json atomically
(temporary file + os.replace), then removes older step folders: a crash at any point leaves the
previous checkpoint readable. Loading checks every size and checksum before parsing anything,
so a truncated or corrupted file raises `CheckpointError` and nothing is half-loaded. No pickle:
arrays live in safetensors, everything else in JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import CheckpointError
from tinyllm.io.safetensors import dumps, loads, write_atomic

MANIFEST = "manifest.json"
FORMAT = "tinyllm-checkpoint"
VERSION = 1
_ARRAY_KEY = "__array__"


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model and continue its training."""

    weights: dict  # {parameter name: NumPy array}
    config: dict  # the model config, with "model_type"
    tokenizer: dict | None = None  # Tokenizer.to_dict()
    optimizer: dict | None = None  # Optimizer.state_dict(): JSON values and NumPy arrays
    state: dict = field(default_factory=dict)  # step, rng, data position, training config, ...

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))


def save_checkpoint(directory: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write checkpoint into directory (created if needed) and return the new step folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    optimizer_json, optimizer_arrays = split_arrays(checkpoint.optimizer) if checkpoint.optimizer else (None, {})
    files = {
        "model.safetensors": dumps(checkpoint.weights),
        "config.json": _json_bytes(checkpoint.config),
        "state.json": _json_bytes({**checkpoint.state, "optimizer": optimizer_json}),
    }
    if checkpoint.tokenizer is not None:
        files["tokenizer.json"] = _json_bytes(checkpoint.tokenizer)
    if checkpoint.optimizer is not None:
        files["optimizer.safetensors"] = dumps(optimizer_arrays)
    folder_name = f"step-{checkpoint.step:06d}-{os.urandom(4).hex()}"  # never the name of a live folder
    staging = directory / f".{folder_name}.partial"
    staging.mkdir()
    for name, data in files.items():
        with open(staging / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    staging.rename(directory / folder_name)
    _fsync_dir(directory)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "folder": folder_name,
        "step": checkpoint.step,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()
        },
    }
    manifest["manifest_sha256"] = _digest(manifest)
    write_atomic(directory / MANIFEST, json.dumps(manifest, separators=(",", ":")).encode("utf-8"))
    _fsync_dir(directory)
    for stale in directory.iterdir():  # older checkpoints and partial writes of crashed saves
        ours = stale.name.startswith("step-") or (stale.name.startswith(".step-") and stale.name.endswith(".partial"))
        if ours and stale.is_dir() and stale.name != folder_name:
            shutil.rmtree(stale, ignore_errors=True)
    return directory / folder_name


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Return the checkpoint in directory, after checking every file's size and SHA-256."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    folder = directory / manifest["folder"]
    contents = {}
    for name, expected in manifest["files"].items():
        try:
            data = (folder / name).read_bytes()
        except OSError as error:
            raise CheckpointError(f"checkpoint {directory}: cannot read {name}: {error.strerror or error}") from error
        if len(data) != expected["bytes"]:
            raise CheckpointError(
                f"checkpoint {directory}: {name} has {len(data)} bytes, the manifest says {expected['bytes']} (truncated?)"
            )
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise CheckpointError(f"checkpoint {directory}: {name} does not match its SHA-256 checksum (corrupted)")
        contents[name] = data
    for required in ("model.safetensors", "config.json", "state.json"):
        if required not in contents:
            raise CheckpointError(f"checkpoint {directory}: the manifest lists no {required}")
    weights, _ = loads(contents["model.safetensors"], source=f"{folder}/model.safetensors")
    state = _parse_json(contents["state.json"], f"{folder}/state.json")
    optimizer_json = state.pop("optimizer", None)
    optimizer = None
    if optimizer_json is not None:
        arrays, _ = loads(contents.get("optimizer.safetensors", b""), source=f"{folder}/optimizer.safetensors")
        optimizer = join_arrays(optimizer_json, arrays)
    tokenizer = (
        _parse_json(contents["tokenizer.json"], f"{folder}/tokenizer.json") if "tokenizer.json" in contents else None
    )
    return Checkpoint(
        weights, _parse_json(contents["config.json"], f"{folder}/config.json"), tokenizer, optimizer, state
    )


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Return whether directory holds a checkpoint manifest (it may still be corrupted)."""
    return (Path(directory) / MANIFEST).is_file()


# -- arrays inside JSON trees -----------------------------------------------------------------------
def split_arrays(tree, prefix: str = "") -> tuple:
    """Return (tree with each array replaced by {"__array__": key}, {key: array})."""
    arrays: dict = {}

    def walk(node, path):
        if isinstance(node, dict):
            return {str(k): walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node)]
        if hasattr(node, "shape") and hasattr(node, "dtype"):
            arrays[path] = np.asarray(node)
            return {_ARRAY_KEY: path}
        return node

    return walk(tree, prefix), arrays


def join_arrays(tree, arrays: dict):
    """Return tree with every {"__array__": key} replaced by arrays[key] (the inverse of split_arrays)."""
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY_KEY}:
            if tree[_ARRAY_KEY] not in arrays:
                raise CheckpointError(f"checkpoint: array {tree[_ARRAY_KEY]!r} is missing from optimizer.safetensors")
            return arrays[tree[_ARRAY_KEY]]
        return {k: join_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_arrays(v, arrays) for v in tree]
    return tree


# -- helpers --------------------------------------------------------------------------------------
def _json_bytes(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8")


def _parse_json(data: bytes, source: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{source} is not valid JSON: {error}") from None


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(
            f"no checkpoint in {directory}: cannot read {MANIFEST} ({error.strerror or error})"
        ) from error
    manifest = _parse_json(data, str(path))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinyllm checkpoint manifest")
    checksum = manifest.pop("manifest_sha256", None)
    if checksum != _digest(manifest):
        raise CheckpointError(f"{path} does not match its own SHA-256 checksum (corrupted)")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {manifest.get('version')!r}, this tinyllm reads {VERSION}")
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("folder"), str):
        raise CheckpointError(f"{path}: the manifest lacks its folder or file list")
    if "/" in manifest["folder"] or manifest["folder"] in ("", ".", ".."):
        raise CheckpointError(f"{path}: bad folder name {manifest['folder']!r}")
    return manifest


def _digest(manifest: dict) -> str:
    """Return the SHA-256 of a manifest's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside directory durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
