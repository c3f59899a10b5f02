"""File access for local paths and ``gs://`` URLs, with atomic writes.

``gs://`` goes through google-cloud-storage rather than ``tf.io.gfile``: the client library honours
``STORAGE_EMULATOR_HOST`` (TensorFlow's GCS file system is not documented to), so the local emulator
(tests) and real Cloud Storage share one code path. When ``STORAGE_EMULATOR_HOST`` is set the client uses anonymous
credentials against the emulator.

Writes are atomic: a local file is written by :mod:`hierseg.atomic_write` (temporary name, then rename);
a GCS object only becomes visible once its upload completes, so uploading to the final name is atomic.
Readers of the Open Images files (pandas, zipfile) are given a local path: :func:`localize` downloads a
``gs://`` file once into a cache folder (a no-op for local paths).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading

from hierseg import atomic_write

_client_lock = threading.Lock()
_client = None


def is_gcs(path: str) -> bool:
    return str(path).startswith("gs://")


def _split_gcs(path: str) -> tuple[str, str]:
    rest = path[len("gs://") :]
    bucket, _, name = rest.partition("/")
    if not bucket:
        raise ValueError(f"{path}: not a gs://bucket/object URL")
    return bucket, name


def gcs_client():
    """A google.cloud.storage.Client (one per process); anonymous against STORAGE_EMULATOR_HOST."""
    global _client
    with _client_lock:
        key = (os.getpid(), os.environ.get("STORAGE_EMULATOR_HOST"))
        if _client is None or getattr(_client, "_hierseg_key", None) != key:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                _client = storage.Client(
                    project=os.environ.get("GOOGLE_CLOUD_PROJECT", "emulator"), credentials=AnonymousCredentials()
                )
            else:
                _client = storage.Client()
            _client._hierseg_key = key
        return _client


def _blob(path: str):
    bucket, name = _split_gcs(path)
    return gcs_client().bucket(bucket).blob(name)


def join(root: str, *names: str) -> str:
    out = str(root)
    for n in names:
        out = f"{out.rstrip('/')}/{n.lstrip('/')}"
    return out


def exists(path: str) -> bool:
    if is_gcs(path):
        return bool(_blob(path).exists())
    return os.path.exists(path)


def makedirs(path: str) -> None:
    if not is_gcs(path):  # GCS has no folders
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    """File names directly in a folder (sorted); [] when it does not exist."""
    if is_gcs(path):
        bucket, prefix = _split_gcs(path.rstrip("/") + "/")
        names = [b.name[len(prefix) :] for b in gcs_client().list_blobs(bucket, prefix=prefix)]
        return sorted(n for n in names if n and "/" not in n)
    if not os.path.isdir(path):
        return []
    return sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))


def remove(path: str) -> None:
    if is_gcs(path):
        _blob(path).delete()
    elif os.path.exists(path):
        os.remove(path)


def read_bytes(path: str) -> bytes:
    """The whole file. Raises FileNotFoundError when it does not exist (local or gs://)."""
    if is_gcs(path):
        from google.api_core import exceptions

        try:
            return _blob(path).download_as_bytes()
        except exceptions.NotFound:
            raise FileNotFoundError(f"{path}: not found") from None
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    if is_gcs(path):
        _blob(path).upload_from_string(data)
        return
    atomic_write.write_bytes(path, data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def publish_file(local_path: str, path: str) -> None:
    """Moves a finished local file to ``path`` (local rename, or upload then delete), atomically."""
    if is_gcs(path):
        _blob(path).upload_from_filename(local_path)
        os.remove(local_path)
    else:
        os.replace(local_path, path)


def object_version(path: str) -> str:
    """``"{generation}-{size}"`` of a gs:// object: it changes whenever the object is rewritten.

    Raises:
      FileNotFoundError: when the object does not exist.
    """
    blob = _blob(path)
    try:
        blob.reload()
    except Exception as e:
        if type(e).__name__ == "NotFound":
            raise FileNotFoundError(f"{path}: not found") from None
        raise
    return f"{blob.generation}-{blob.size}"


def localize(path: str, cache_dir: str) -> str:
    """A local path holding the file: ``path`` itself when local, else a cached download keyed by the
    object's generation and size (a cache file is never reused for a rewritten object)."""
    if not is_gcs(path):
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    local = os.path.join(cache_dir, f"{digest}-{object_version(path)}-{os.path.basename(path)}")
    if not os.path.exists(local):
        os.makedirs(cache_dir, exist_ok=True)
        try:
            with atomic_write.atomic_path(local) as tmp:
                _blob(path).download_to_filename(tmp)
        except Exception as e:
            if type(e).__name__ == "NotFound":
                raise FileNotFoundError(f"{path}: not found") from None
            raise
    return local


def local_scratch(out_dir: str) -> str:
    """A local folder for temporary shard files: next to the output when local (so the final rename
    stays on one file system), else in the system temp folder."""
    if is_gcs(out_dir):
        d = os.path.join(tempfile.gettempdir(), "hierseg-prepare-" + hashlib.sha1(out_dir.encode()).hexdigest()[:12])
    else:
        d = out_dir
    os.makedirs(d, exist_ok=True)
    return d


def rmtree_local(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
