"""The one exception type for mistakes a user can fix (bad file, unknown name, missing package)."""


class UserError(Exception):
    """A user-fixable problem. The CLI prints its message as one line, without a traceback.

    The message should name the file/field/value at fault and say what would fix it.
    """
