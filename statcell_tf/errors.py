"""The one exception type for problems the user can fix (bad files, flags, data).

Library code raises `UserError` with a one-line message naming the file, key or flag, what
was expected and what was received. The CLI prints that line and exits with status 2, without
a traceback; every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with user input: message is one line, shown verbatim by the CLI."""
