"""The one exception type for problems the user can fix (bad files, flags, data).

Library code raises `UserError` with a one-line message naming the file, key or flag, what
was expected and what was received. The CLI prints that line and exits with status 2, without
a traceback; every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with user input: message is one line, shown verbatim by the CLI."""


# Errors raised inside TensorFlow (e.g. a NaN found while a tf.data pipeline gathers a batch)
# reach Python wrapped in a tf.errors type; a message carrying this mark is a user error.
USER_ERROR_MARK = "[statcell_tf user error] "


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
            from statcell_tf.atomic import current_output

            where = error.filename or current_output() or "the output"
            reason = error.strerror or code or "No space left on device (short write)"
            return f"{where}: {reason} (expected a writable location with free space)"
    text = str(error)
    if USER_ERROR_MARK in text:
        return text.split(USER_ERROR_MARK, 1)[1].splitlines()[0].strip()
    return None
