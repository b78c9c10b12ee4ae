"""Errors nodeops reports to operators: one clear sentence, no traceback needed."""


class NodeopsError(Exception):
    """Base of every error nodeops expects and reports as a message."""


class InventoryError(NodeopsError):
    """An inventory that cannot be used: unreadable, invalid, or a selection matching nothing."""


class HostKeyError(NodeopsError):
    """A host key that is unknown or changed; nothing was sent to that host."""


class TransportError(NodeopsError):
    """A node that cannot be reached, or a command that could not run to its end."""


class CommandFailed(NodeopsError):
    """A remote command that ran and exited non-zero."""


class UnsupportedOS(NodeopsError):
    """A node whose operating system nodeops does not manage."""


class LabError(NodeopsError):
    """The local lab cannot be started, reached or torn down."""
