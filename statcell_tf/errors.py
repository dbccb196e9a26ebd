"""The one exception type for problems the user can fix (bad files, flags, data).

Library code raises `UserError` with a one-line message naming the file, key or flag, what
was expected and what was received. The CLI prints that line and exits with status 2, without
a traceback; every other exception is a bug and keeps its traceback. Which other exceptions
also reach the user as one line (a full or read-only disk, a user error raised inside a
TensorFlow op) is decided next to the CLI's handler, in `statcell_tf.cli._errors`. This
module imports nothing.
"""


class UserError(Exception):
    """A problem with user input: message is one line, shown verbatim by the CLI."""


# Errors raised inside TensorFlow (e.g. a NaN found while a tf.data pipeline gathers a batch)
# reach Python wrapped in a tf.errors type; a message carrying this mark is a user error.
USER_ERROR_MARK = "[statcell_tf user error] "
