"""Exception hierarchy: every error cptopt raises on purpose derives from CptoptError.

The CLI maps ``InputError`` (and its subclasses) to a one-line message and exit code 2;
library users catch the classes they care about.

Messages speak Python: a parameter or function a message names is marked with
:func:`param` (``f"{param('weights')} == {text!r}, must be ..."``). ``str(error)`` shows
the Python name (``weights == 'abc', must be ...``); :meth:`InputError.render` shows each
marked name as a caller maps it, which is how the command line names its options
(``--weights == 'abc', must be ...``, in ``cptopt.cli._common.error_line``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: A marked name in a message: between two control characters (RS, US) that no message,
#: value or file name holds, so that a value shown in a message is never taken for a name.
_MARK = re.compile("\x1e([^\x1e\x1f]+)\x1f")


def param(name: str) -> str:
    """``name`` (a parameter such as ``weights``, a key such as ``columns.general`` or a
    function such as ``recommend()``) marked in a message, for :meth:`InputError.render`."""
    return f"\x1e{name}\x1f"


class CptoptError(Exception):
    """Base class of all errors raised deliberately by cptopt."""


class InputError(CptoptError, ValueError):
    """Bad user input: a file, a column, a value or an option. Message is one line.

    ``fields`` are the names the message marks (:func:`param`), in order; ``str()`` shows
    them as they are, :meth:`render` as a caller names them.
    """

    def __init__(self, message: str = "") -> None:
        self.template = message
        self.fields = tuple(dict.fromkeys(_MARK.findall(message)))
        super().__init__(self.render())

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each marked name as ``names`` gives it (unmapped: as is)."""
        names = names or {}
        return _MARK.sub(lambda match: names.get(match[1], match[1]), self.template)

    def __reduce__(self) -> tuple:  # keeps the marks across processes
        return type(self), (self.template,)


class NotATrainingConfig(InputError):
    """A file given as a training config that is another kind of file (a search config, a
    candidates list, ...): the message says what it is and what takes it; ``kind`` names
    it in a few words (``a search config``)."""

    def __init__(self, message: str = "", kind: str = "another kind of file") -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple:
        return type(self), (self.template, self.kind)


class SchemaVersionError(InputError):
    """A law or study file was written by an incompatible version of cptopt."""


class FitError(CptoptError):
    """The optimiser could not produce a usable fit (e.g. every start failed)."""


class IdentifiabilityError(InputError):
    """The pilots cannot identify a term of the law (e.g. a single replay ratio)."""


class NotFittedError(CptoptError, AttributeError):
    """An estimator was used before ``fit``."""


class InfeasibleError(CptoptError):
    """No setting satisfies the user's constraints."""
