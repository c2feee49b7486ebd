"""Reading the files people give: UTF-8 text or one clear message, never a decoding traceback."""

from __future__ import annotations

from pathlib import Path

from promptyard.errors import UserError

__all__ = ["read_text"]


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of `path` (a byte-order mark is dropped), or a UserError naming the fix."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"The {what} {path} does not exist: check the path.") from None
    except IsADirectoryError:
        raise UserError(f"The {what} {path} is a folder: give a file.") from None
    except PermissionError:
        raise UserError(f"The {what} {path} cannot be read (permission denied): check its permissions.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"The {what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save it as "
            f"UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > fixed && mv fixed {path}`."
        ) from None
