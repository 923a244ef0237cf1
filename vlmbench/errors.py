"""The one exception type for mistakes a user can fix (bad file, unknown name, missing package)."""


class UserError(Exception):
    """A user-fixable problem. The CLI prints its message as one line, without a traceback.

    The message should name the file/field/value at fault and say what would fix it.
    """


class TaskSkipped(UserError):
    """A task that cannot run on the data at hand (e.g. no caption column); its message is one line
    saying why. ``evaluate`` leaves the task out of the run and goes on; elsewhere it is a user error."""
