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


def user_message(error: BaseException) -> str | None:
    """The user-facing line of `error` if it is (or wraps) a user error, else None."""
    if isinstance(error, UserError):
        return str(error)
    text = str(error)
    if USER_ERROR_MARK in text:
        return text.split(USER_ERROR_MARK, 1)[1].splitlines()[0].strip()
    return None
