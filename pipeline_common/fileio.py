"""File access through Beam's FileSystems, so the same code reads and writes `gs://`.

Outputs are written atomically: bytes go to a hidden temporary name beside the
target and are renamed into place only once the write has finished, so a failed
run never leaves a half-written file under the final name.
"""
import contextlib
import json
import posixpath
import re
import uuid

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def join(base, *parts):
    """Joins path parts for any filesystem (local or gs://)."""
    return FileSystems.join(base, *parts)


def exists(path):
    return FileSystems.exists(path)


def makedirs(path):
    """Creates a directory unless it exists (no-op on object stores, which have none).

    Parallel workers may race to create the same directory; losing that race is fine.
    """
    if FileSystems.exists(path):
        return
    try:
        FileSystems.mkdirs(path)
    except IOError:
        if not FileSystems.exists(path):
            raise


def glob(pattern):
    """Sorted paths matching a glob pattern; empty list when none match."""
    result = FileSystems.match([pattern])[0]
    return sorted(meta.path for meta in result.metadata_list)


def size(path):
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def open_read(path, compressed=None):
    """Opens a file for reading bytes; `.gz`/`.bz2`… are decompressed by suffix.

    `compressed=False` reads raw bytes whatever the name.
    """
    kind = CompressionTypes.UNCOMPRESSED if compressed is False else CompressionTypes.AUTO
    return FileSystems.open(path, compression_type=kind)


def read_bytes(path):
    with open_read(path, compressed=False) as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_bytes(path).decode("utf-8-sig"))   # a byte-order mark is skipped


def _temp_name(path):
    directory, name = posixpath.split(path) if "://" in path else _split_local(path)
    return join(directory, f".tmp-{uuid.uuid4().hex[:12]}-{name}")


_TEMP_PREFIX = re.compile(r"(^|/)\.tmp-[0-9a-f]{12}-")


def final_name(path):
    """`path` with atomic_write's temporary prefix removed (the file it was writing)."""
    return _TEMP_PREFIX.sub(r"\1", path)


def _split_local(path):
    import os.path
    return os.path.split(os.path.abspath(path))


class RemoteWriteError(IOError):
    """Writing a file on an object store failed; the message names the file.

    The storage client's own errors (a resumable upload's "Request failed with
    status code 503", a RetryError) often carry no object name.
    """


@contextlib.contextmanager
def atomic_write(path, compressed=False):
    """Yields a binary handle; the file appears under `path` only on success.

    `compressed=True` gzips the stream (use with a `.gz` name).
    """
    with _naming_remote(path):
        tmp = _temp_name(path)
        directory = posixpath.dirname(tmp) if "://" in tmp else _split_local(tmp)[0]
        if "://" not in tmp:
            makedirs(directory)
        kind = CompressionTypes.GZIP if compressed else CompressionTypes.UNCOMPRESSED
        handle = FileSystems.create(tmp, compression_type=kind)
        try:
            yield handle
            handle.close()
        except BaseException:
            for cleanup in (handle.close, lambda: delete([tmp])):
                try:
                    cleanup()
                except Exception:  # pylint: disable=broad-except  (keep the first error)
                    pass
            raise
        delete([path])
        rename(tmp, path)


@contextlib.contextmanager
def _naming_remote(path):
    """Re-raises a failure on an object-store path as a RemoteWriteError that names it."""
    try:
        yield
    except RemoteWriteError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        if "://" not in path:
            raise
        first = next((line for line in str(err).splitlines() if line.strip()), "")
        raise RemoteWriteError(f"writing {path} failed: {type(err).__name__}: {first}") from err


def delete(paths):
    """Deletes files (or local folders); a missing one is fine.

    On gs:// a batch request first, and if that fails, one request per object
    with the storage client's retries: Beam 2.77's batch delete and copy
    (behind `FileSystems.delete/rename`) do not retry a batch request the store
    answers with 5xx; they fail with "AttributeError: 'NoneType' object has no
    attribute 'status_code'".
    """
    local = [p for p in paths if not p.startswith("gs://") and FileSystems.exists(p)]
    if local:
        FileSystems.delete(local)
    remote = [p for p in paths if p.startswith("gs://")]
    if len(remote) > 1:
        try:
            FileSystems.delete(remote)
            return
        except Exception:  # pylint: disable=broad-except  (retried one by one below)
            pass
    for path in remote:
        _gcs(path).delete(path)


def remove_tree(path):
    """Removes a file or a folder with everything under it (on gs://: every object under
    the prefix); a missing one is fine."""
    if "://" not in path:
        import os.path
        import shutil
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        return
    matches = glob(path.rstrip("/") + "/**") if not path.endswith((".json", ".parquet")) else []
    if exists(path):
        matches.append(path)
    if matches:
        delete(matches)


def rename(source, target):
    """Moves one file into place (on gs://: a single retried copy, then a delete)."""
    if source.startswith("gs://"):
        gcs = _gcs(source)
        gcs.copy(source, target)
        gcs.delete(source)
    else:
        FileSystems.rename([source], [target])


def _gcs(path):
    """Beam's GcsIO for `path`, with the pipeline options FileSystems was given."""
    return FileSystems.get_filesystem(path)._gcsIO()  # pylint: disable=protected-access


def write_bytes(path, data):
    with atomic_write(path) as handle:
        handle.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
