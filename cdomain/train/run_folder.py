"""The output folder of a run: created safely, reused only when asked, and its metrics log.

- A default output name (``runs/<time>-<model>-<input>-<mode>``) is claimed with an exclusive
  ``mkdir``: two runs started in the same second get ``...`` and ``...-2``, never one folder.
- An explicit ``--output`` must not exist, or be an empty folder. A non-empty folder is used
  only with ``--resume`` (continue it) or ``--overwrite`` (replace an earlier cdomain run: only
  the files that run wrote, by name, are removed; anything else in the folder stays).
- ``metrics.jsonl`` gets one JSON record per line; a torn last line (a run killed mid-write) is
  dropped when the run resumes, and any other damage is reported with the file and line.
- A command that fails takes back the folders it created and left empty
  (:func:`cdomain.atomic.tidy_on_failure`): the run folder, and ``runs/`` or the missing parents
  of ``--output``. A folder that existed before, or that holds anything, is never removed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cdomain.atomic import atomic_write, make_folders, note_created
from cdomain.errors import CheckpointError, RunFolderError
from cdomain.train.state import STATE_FILE, confined, load_state

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
#: Files a run writes at the top of its folder (phase files follow PHASE_PATTERN).
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, STATE_FILE, "model.safetensors", "best.safetensors",
             "codec.safetensors", "best-codec.safetensors")
PHASE_PATTERN = "phase*-*.safetensors"


def claim_default(stem: str, parent: Path = Path("runs")) -> Path:
    """Create and return a new folder ``parent/stem`` (or ``stem-2``, ``stem-3``, ...), atomically."""
    try:
        make_folders(parent)
    except OSError as error:
        raise RunFolderError(f"{parent}: cannot create the runs folder ({error.strerror or error})") from None
    for number in range(1, 10_000):
        path = parent / (stem if number == 1 else f"{stem}-{number}")
        try:
            path.mkdir()
            note_created(path)
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise RunFolderError(f"{path}: cannot create the output folder ({error.strerror or error})") from None
    raise RunFolderError(f"{parent}: too many runs named {stem}")


def default_stem(model: str, input_kind: str, fbs: int, mode: str) -> str:
    suffix = f"fbs{fbs}" if input_kind == "dct" else input_kind
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{suffix}-{mode}"


def prepare_output(output: Path, *, resume: bool, overwrite: bool) -> Path:
    """Check (and create) an explicit output folder for a new, resumed or replacing run."""
    if output.exists() and not output.is_dir():
        raise RunFolderError(f"--output {output}: exists and is not a folder")
    if resume:
        if not output.is_dir():
            raise RunFolderError(f"--output {output}: no such run folder to resume")
        return output
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise RunFolderError(f"--output {output}: folder is not empty; pass --resume to continue the run in it, "
                                 "--overwrite to replace it, or choose a new folder")
        remove_run_files(output)
    try:
        make_folders(output)
    except OSError as error:
        raise RunFolderError(f"--output {output}: cannot create it ({error.strerror or error})") from None
    return output


def remove_run_files(output: Path) -> None:
    """Remove what an earlier cdomain run wrote into ``output`` (by name), nothing else."""
    if not (output / CONFIG_FILE).is_file():
        raise RunFolderError(f"--output {output}: --overwrite replaces an earlier cdomain run, "
                             f"but this folder has no {CONFIG_FILE}; choose an empty folder")
    try:
        state = load_state(output) if (output / STATE_FILE).exists() else None
    except CheckpointError:
        state = None
    if state is not None:
        for relative in state.files.values():
            confined(output, relative, output / STATE_FILE).unlink(missing_ok=True)
    for name in RUN_FILES:
        path = output / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for path in output.glob(PHASE_PATTERN):
        if path.is_file() and not path.is_symlink():
            path.unlink()


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a torn last line is dropped, other damage is an error."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable ({error})") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == len(lines):  # written when the run was killed: drop it
                break
            raise CheckpointError(f"{path}: line {number} is not a JSON record") from None
        records.append(record)
    return records


def rewrite_metrics(path: Path, records: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(record) + "\n" for record in records))


def append_metrics(path: Path, record: dict) -> None:
    """Append one record; the line is written with one ``write`` and flushed to disk."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
