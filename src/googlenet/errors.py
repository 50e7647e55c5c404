"""The one exception type the command line turns into a clean one-line message."""


class UserError(Exception):
    """Bad input from the user (a file, an argument): the message says what and what to do.

    ``googlenet.cli`` prints it as ``googlenet: error: <message>`` and exits with status 2,
    never with a traceback.
    """
