"""The user-facing line of an exception, for the CLI's one error handler (`statcell_tf.cli`).

A `UserError` is shown as it is; a failure of the filesystem the user chose (full disk,
read-only, no permission, a file where a folder should be) becomes one line naming the path
being written; a user error raised inside a TensorFlow op (wrapped by TensorFlow, marked with
`errors.USER_ERROR_MARK`) is unwrapped. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from statcell_tf.atomic import current_output
from statcell_tf.errors import USER_ERROR_MARK, UserError

# Failures of the filesystem the user chose (full disk, read-only, no permission, a file where
# a folder should be): one line naming the path, like any other user error.
_FILESYSTEM_ERRNOS = {"ENOSPC", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "EDQUOT", "EEXIST"}


def user_message(error: BaseException) -> str | None:
    """The user-facing line of `error` if it is (or wraps) a user error, else None."""
    import errno

    import re

    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError):
        code = errno.errorcode.get(error.errno)
        # numpy's writers report a short write (a full disk) without an errno
        short_write = error.errno is None and re.search(r"requested and \d+ written", str(error))
        if code in _FILESYSTEM_ERRNOS or short_write:
            where = error.filename or current_output() or "the output"
            reason = error.strerror or code or "No space left on device (short write)"
            return f"{where}: {reason} (expected a writable location with free space)"
    text = str(error)
    if USER_ERROR_MARK in text:
        return text.split(USER_ERROR_MARK, 1)[1].splitlines()[0].strip()
    return None
