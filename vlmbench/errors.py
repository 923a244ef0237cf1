"""The one exception type for mistakes a user can fix (bad file, unknown name, missing package)."""


class UserError(Exception):
    """A user-fixable problem. The CLI prints its message as one line, without a traceback.

    The message should name the file/field/value at fault and say what would fix it.
    """


class TaskSkipped(UserError):
    """A task that cannot run on the data at hand (e.g. no caption column); its message is one line
    saying why. ``evaluate`` leaves the task out of the run and goes on; elsewhere it is a user error."""


class Stopped(KeyboardInterrupt):
    """The ``vlmbench`` command was asked to stop by a signal other than Ctrl-C (SIGTERM from a scheduler or
    ``timeout``, SIGHUP from a closed terminal): raised where the process is, as Ctrl-C's KeyboardInterrupt
    is, so that a run writes what it holds before it ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def printable(text: str) -> str:
    """``text`` as a terminal or log shows it safely: every character that is not printable (control
    characters of escape sequences, bidirectional overrides, line breaks) becomes U+FFFD, so text from a
    file, a dataset or a server can change neither the screen nor the line it is on."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "\ufffd" for c in text)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters: what a one-line error quotes of it."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]
