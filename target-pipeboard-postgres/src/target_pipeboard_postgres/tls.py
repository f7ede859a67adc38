"""TLS certificates given as PEM text, written to private files for libpq.

MeltanoLabs target-postgres takes `ssl_certificate_authority`, `ssl_client_certificate` and
`ssl_client_private_key` either as a file path or as the certificate itself (often from an
environment variable). libpq only reads files, so text is written to a file in a private
temporary directory (mode 0700, files 0600) that is removed when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from target_pipeboard_postgres.errors import InvalidSettingError

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_lock = threading.Lock()
_directory: Path | None = None


def _private_directory() -> Path:
    global _directory  # one directory per process, removed at exit
    if _directory is None:
        _directory = Path(tempfile.mkdtemp(prefix="pipeboard-tls-"))
        atexit.register(shutil.rmtree, _directory, ignore_errors=True)
    return _directory


def pem_text(value: str) -> str:
    """PEM text as libpq reads it, also when its line breaks were lost or escaped on the way.

    An environment variable often carries ``\\n`` escapes, or spaces where the line breaks
    were; the base64 body has no spaces, so a block on one line is rebuilt line by line.
    """
    text = value.replace("\\n", "\n").strip()
    if "\n" in text:
        return text + "\n"

    def rebuild(block: re.Match[str]) -> str:
        label, body = block.group(1), block.group(2)
        lines = body.split()
        return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])

    return _PEM_BLOCK.sub(rebuild, text) + "\n"


def certificate_file(setting: str, value: str, *, private: bool = False) -> str:
    """A file libpq can read for a certificate setting given as a path or as PEM text.

    Raises:
        InvalidSettingError: the value is neither PEM text nor an existing file. The value
            itself is never repeated (it may be a private key).
    """
    if "-----BEGIN " not in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise InvalidSettingError(
                setting,
                "expected PEM text (-----BEGIN ...) or the path of an existing file; "
                "no file of that name exists",
            )
        return str(path)
    text = pem_text(value)
    if not _PEM_BLOCK.search(text):
        raise InvalidSettingError(setting, "PEM text without a complete -----BEGIN/-----END block")
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    with _lock:
        path = _private_directory() / f"{digest}.{'key' if private else 'pem'}"
        if not path.exists():
            # 0600 from the start: libpq refuses a private key others can read.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(text)
    return str(path)
