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
(temporary file + os.replace), then removes the step folders of earlier manifests: a crash at
any point leaves the previous checkpoint readable. Only what tinyllm can show it wrote is ever
removed: the folders a manifest or the pending record of a save (`.pending-checkpoint.json`,
written before the folder) named, and in them only the files above (a folder that holds anything
else stays), and its own leftovers of a crashed save (`.step-*.partial` folders holding only
those files, `.manifest.json.*.tmp`). A user's `DIR/step-plan/notes.md` is never touched.

A checkpoint folder is untrusted input. Loading reads only the file names above, in the one
step folder the manifest names, never through a link, and checks every size and checksum
before parsing anything, so a truncated, corrupted or crafted file raises `CheckpointError` and
nothing is half-loaded. No pickle: arrays live in safetensors, everything else in JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.backend import np
from tinyllm.errors import CheckpointError
from tinyllm.io.safetensors import dumps, loads, write_atomic
from tinyllm.io.untrusted import parse_json, read_regular_file

MANIFEST = "manifest.json"
FORMAT = "tinyllm-checkpoint"
VERSION = 1
_ARRAY_KEY = "__array__"
FILE_NAMES = ("model.safetensors", "optimizer.safetensors", "config.json", "tokenizer.json", "state.json")
MAX_MANIFEST_BYTES = 1_000_000
PENDING = ".pending-checkpoint.json"  # the step folders a save is writing, until its manifest is in place
# what save_checkpoint names: step folders, their staging folders, write_atomic's temporary manifests
_STEP_FOLDER = re.compile(r"step-\d{6,}-[0-9a-f]{8}")
_PARTIAL_FOLDER = re.compile(r"\.step-\d{6,}-[0-9a-f]{8}\.partial")
# (write_atomic prefixes a dot to the file's name, so the pending record's begins with two)
_MANIFEST_TMP = re.compile(r"\.(manifest|\.pending-checkpoint)\.json\.[A-Za-z0-9_]{1,16}\.tmp")


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
    previous = _previous_folders(directory)
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
    # Name the folder before it exists: a crash after its rename but before the manifest switch
    # leaves a folder no manifest names, and this record lets the next save prove it is ours.
    interrupted = _pending_folders(directory)
    write_atomic(directory / PENDING, json.dumps({"folders": [*interrupted, folder_name]}).encode("utf-8"))
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
        # earlier folders of ours still to remove: a crash before their removal leaves them named here
        "stale": previous,
    }
    manifest["manifest_sha256"] = _digest(manifest)
    write_atomic(directory / MANIFEST, json.dumps(manifest, separators=(",", ":")).encode("utf-8"))
    _fsync_dir(directory)
    for name in {*previous, *interrupted} - {folder_name}:
        _remove_step_folder(directory / name)
    (directory / PENDING).unlink(missing_ok=True)
    _remove_leftovers(directory)
    return directory / folder_name


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Return the checkpoint in directory, after checking every file's size and SHA-256."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    folder = directory / manifest["folder"]
    if folder.is_symlink() or not folder.is_dir():
        raise CheckpointError(f"checkpoint {directory}: {manifest['folder']} is not a folder (missing or a link)")
    contents = {}
    for name, expected in manifest["files"].items():
        data = read_regular_file(folder / name, CheckpointError, follow_links=False, expected_bytes=expected["bytes"])
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise CheckpointError(f"checkpoint {directory}: {name} does not match its SHA-256 checksum (corrupted)")
        contents[name] = data
    for required in ("model.safetensors", "config.json", "state.json"):
        if required not in contents:
            raise CheckpointError(f"checkpoint {directory}: the manifest lists no {required}")
    weights, _ = loads(contents["model.safetensors"], source=f"{folder}/model.safetensors")
    state = _parse_json(contents["state.json"], f"{folder}/state.json")
    if not isinstance(state, dict):
        raise CheckpointError(f"{folder}/state.json is not a JSON object")
    optimizer_json = state.pop("optimizer", None)
    optimizer = None
    if optimizer_json is not None:
        arrays, _ = loads(contents.get("optimizer.safetensors", b""), source=f"{folder}/optimizer.safetensors")
        optimizer = join_arrays(optimizer_json, arrays)
    tokenizer = (
        _parse_json(contents["tokenizer.json"], f"{folder}/tokenizer.json") if "tokenizer.json" in contents else None
    )
    config = _parse_json(contents["config.json"], f"{folder}/config.json")
    if not isinstance(config, dict) or (tokenizer is not None and not isinstance(tokenizer, dict)):
        raise CheckpointError(f"checkpoint {directory}: config.json and tokenizer.json must hold JSON objects")
    return Checkpoint(weights, config, tokenizer, optimizer, state)


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
    return parse_json(data, source, CheckpointError)


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_symlink() and not path.exists():
        raise CheckpointError(f"no checkpoint in {directory}: it has no {MANIFEST}")
    data = read_regular_file(path, CheckpointError, max_bytes=MAX_MANIFEST_BYTES, follow_links=False)
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
    if not _STEP_FOLDER.fullmatch(manifest["folder"]):
        raise CheckpointError(f"{path}: bad folder name {manifest['folder'][:100]!r}; expected step-NNNNNN-xxxxxxxx")
    for name, entry in manifest["files"].items():
        if name not in FILE_NAMES:
            raise CheckpointError(
                f"{path}: unexpected file name {name[:100]!r}; a checkpoint holds {', '.join(FILE_NAMES)}"
            )
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("bytes"), int)
            or isinstance(entry.get("bytes"), bool)
            or entry["bytes"] < 0
            or not isinstance(entry.get("sha256"), str)
        ):
            raise CheckpointError(
                f"{path}: the entry of {name} needs a byte count and a SHA-256, got {str(entry)[:100]}"
            )
    return manifest


def _previous_folders(directory: Path) -> list[str]:
    """Return the step folders the current manifest (if readable) names: its own and its stale ones."""
    try:
        manifest = _read_manifest(directory)
    except CheckpointError:
        return []
    stale = manifest.get("stale", [])
    names = [manifest["folder"], *(stale if isinstance(stale, list) else [])]
    return [n for n in names if isinstance(n, str) and _STEP_FOLDER.fullmatch(n) and (directory / n).exists()]


def _pending_folders(directory: Path) -> list[str]:
    """Return the step folders an interrupted save was writing (named in PENDING before it began)."""
    path = directory / PENDING
    if not path.exists() and not path.is_symlink():
        return []
    try:
        record = parse_json(
            read_regular_file(path, CheckpointError, 100_000, follow_links=False), str(path), CheckpointError
        )
    except CheckpointError:
        return []
    names = record.get("folders", []) if isinstance(record, dict) else []
    return [n for n in names if isinstance(n, str) and _STEP_FOLDER.fullmatch(n)] if isinstance(names, list) else []


def _remove_step_folder(folder: Path) -> None:
    """Remove the checkpoint files of a folder save_checkpoint wrote, then the folder if that empties it."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for name in FILE_NAMES:
        file = folder / name
        if file.is_file() and not file.is_symlink():
            file.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass  # something else lives in it: not ours to remove


def _remove_leftovers(directory: Path) -> None:
    """Remove what crashed saves left: staging folders holding only checkpoint files, temporary manifests."""
    for entry in directory.iterdir():
        try:
            info = entry.lstat()
        except OSError:
            continue
        if _MANIFEST_TMP.fullmatch(entry.name) and stat.S_ISREG(info.st_mode):
            entry.unlink(missing_ok=True)
        elif _PARTIAL_FOLDER.fullmatch(entry.name) and stat.S_ISDIR(info.st_mode):
            if all(child.name in FILE_NAMES for child in entry.iterdir()):
                _remove_step_folder(entry)


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
