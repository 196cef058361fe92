"""The one exception type users see.

Every error caused by user input (a malformed architecture string, a missing
data set, a corrupt checkpoint, a NaN loss) is raised as :class:`NsasError`
with a message that names the offending token, file or step. The CLI prints
it as a single line and exits with status 2; it never shows a traceback.
"""


class NsasError(Exception):
    """An error caused by input or state the user can fix."""


class ArchitectureError(NsasError):
    """A malformed or invalid architecture string or JSON value."""


class DataError(NsasError):
    """A data set that is missing, incomplete or unreadable."""


class CheckpointError(NsasError):
    """A checkpoint that is truncated, corrupt, foreign or unsafe."""


class TrainingError(NsasError):
    """Training cannot continue (for example a NaN or infinite loss)."""
