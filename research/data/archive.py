"""Reading named members out of a tar archive (gzip'd or not) in one pass, without extracting to disk."""

from __future__ import annotations

import tarfile
import zlib


def read_members(path, names, dataset: str) -> dict[str, bytes]:
    """{member name: its bytes} for each of `names` in the tar archive `path`, read in one streaming pass.

    Members not asked for are skipped without being kept, so a large archive costs one decompression and
    only the memory of what was asked for. ValueError naming `path` for a corrupt archive or a missing member.
    """
    wanted, found = set(names), {}
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    found[name] = tar.extractfile(member).read()
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(
            f"{path}: not a readable {dataset} archive ({type(e).__name__}: {e}); delete it and load again "
            "to download a good copy."
        ) from None
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(
            f"{path}: not the {dataset} archive: it lacks {', '.join(missing)}; replace it with the published file."
        )
    return found
