"""Finding, downloading, verifying and caching the files of a registered dataset (`registry.Spec`).

A file is looked for, in order, in data_dir (and data_dir/<name>), $JAXCLUSTER_DATA/<name> and the cache
($XDG_CACHE_HOME/jaxcluster/<name>). One in none of them is downloaded from the first mirror whose copy has
the published checksum, streamed into a temporary file in the cache and renamed: never half a file, and
nothing at all from a mirror with a bad copy. Offline, `DataNotFoundError` lists the three ways to supply
the file and the URLs tried. Local files are checked only on request (`verify=True`), downloads always.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from research.data import idx
from research.data.registry import File, Spec

log = logging.getLogger(__name__)

DATA_ENV = "JAXCLUSTER_DATA"
_CHUNK = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """Data files are neither on disk nor downloadable; the message says where to put them."""


def cache_dir(name: str) -> Path:
    """Where downloads of dataset `name` go: $XDG_CACHE_HOME/jaxcluster/<name> (default ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxcluster" / name


def search_dirs(name: str, data_dir=None) -> list[Path]:
    """The folders searched for dataset `name`'s files, in order (the cache last)."""
    dirs = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / name] if data_dir else []
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]).expanduser() / name)
    return dirs + [cache_dir(name)]


def mirror_env(name: str) -> str:
    """The variable that replaces a dataset's mirrors, e.g. JAXCLUSTER_MNIST_MIRROR."""
    return f"JAXCLUSTER_{name.upper()}_MIRROR"


def mirrors_of(spec: Spec, mirrors=None) -> list[str]:
    """Mirror base URLs: the argument, else $JAXCLUSTER_<NAME>_MIRROR (comma-separated), else the table's."""
    if mirrors is None:
        mirrors = os.environ.get(mirror_env(spec.name)) or spec.mirrors
    if isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m.strip()]


def locate(spec: Spec, name: str, data_dir=None, mirrors=None, verify: bool = False) -> Path:
    """The path of file `name` of `spec`: found locally (checked when `verify`) or downloaded (always checked).

    A ".gz" file may also be stored decompressed, under its name without ".gz".
    """
    file = spec.file(name)
    dirs = search_dirs(spec.name, data_dir)
    path = find(dirs, name)
    if path is None:
        return _download(spec, file, mirrors_of(spec, mirrors), dirs)
    if verify:
        check(path, file)
    return path


def find(dirs, name: str) -> Path | None:
    """The first file called `name` in `dirs`, in order (for "x.gz" also "x", decompressed); None if none."""
    names = [name, name.removesuffix(".gz")] if name.endswith(".gz") else [name]
    for d in dirs:
        for candidate in (d / n for n in names):
            if candidate.is_file():
                return candidate
    return None


def _digest(path, file: File) -> str:
    """The hex digest of what `file.checksum` covers in `path`: its bytes, or its gunzipped content."""
    algorithm = file.checksum.partition(":")[0]
    if file.of_content:
        return hashlib.new(algorithm, idx.maybe_gunzip(Path(path).read_bytes(), path)).hexdigest()
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check(path: Path, file: File) -> None:
    """ValueError naming `path` when its checksum is not the published one."""
    algorithm, _, expected = file.checksum.partition(":")
    if path.name != file.name and not file.of_content:
        raise ValueError(
            f"{path}: cannot be verified: the published {algorithm} is of the file as served, {file.name}; "
            "put that file there instead, or load without verify."
        )
    actual = _digest(path, file)
    if actual != expected:
        raise ValueError(
            f"{path}: checksum mismatch: expected {algorithm} {expected}, got {actual}; "
            "the file is corrupt or not the published one: delete it and load again to download a good copy."
        )


def _download(spec: Spec, file: File, mirrors: list[str], searched: list[Path]) -> Path:
    """Fetches `file` from the first mirror whose copy has the published checksum, into the cache."""
    target = cache_dir(spec.name) / file.name
    algorithm, _, expected = file.checksum.partition(":")
    failures, mismatches = [], []
    for base in mirrors:
        url = f"{base.rstrip('/')}/{file.name}"
        tmp = None
        try:
            log.info("Downloading %s", url)
            # Opened before anything is written: offline, the cache is not even created.
            with urllib.request.urlopen(url, timeout=60) as response:
                tmp = _save(response, target.parent, file.name)
            actual = _digest(tmp, file)
            if actual == expected:
                os.replace(tmp, target)
                return target
            mismatches.append(
                f"{url}: checksum mismatch for {file.name}: expected {algorithm} {expected}, got {actual}"
            )
        except (OSError, ValueError) as e:  # URLError/HTTPError are OSErrors; ValueError: bad URL or gzip.
            failures.append(f"{url} ({e})")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    if mismatches:
        raise ValueError("; ".join(mismatches) + ". Nothing was written to the cache; try another mirror.")
    raise DataNotFoundError(not_found_message(spec, file, searched, failures))


def _save(response, folder: Path, name: str) -> str:
    """Streams `response` into a new temporary file in `folder`, synced to disk; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def not_found_message(spec: Spec, file: File, searched: list[Path], failures: list[str]) -> str:
    """The offline message: the three places to put the files, where we looked, the URLs tried."""
    tried = "\n".join(f"    {f}" for f in failures) or "    (no mirrors configured)"
    names = ", ".join(f.name for f in spec.files)
    return (
        f"{spec.name} file {file.name} was not found and could not be downloaded.\n"
        f"Supply the files of {spec.name} ({names}) in one of three ways:\n"
        f"  1. --data_dir=DIR (load(..., data_dir=DIR)): a folder holding them, in DIR or DIR/{spec.name};\n"
        f"  2. ${DATA_ENV}/{spec.name}: set {DATA_ENV} to a folder whose {spec.name}/ holds them"
        f" (now {os.environ.get(DATA_ENV, 'unset')});\n"
        f"  3. the cache dir {cache_dir(spec.name)} (where downloads are saved).\n"
        f"Looked in: {', '.join(str(d) for d in searched)}.\n"
        f"Tried these URLs (set {mirror_env(spec.name)} or pass mirrors= to use another mirror):\n{tried}"
    )
