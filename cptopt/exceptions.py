"""Exception hierarchy: every error cptopt raises on purpose derives from CptoptError.

The CLI maps ``InputError`` (and its subclasses) to a one-line message and exit code 2;
library users catch the classes they care about.
"""

from __future__ import annotations


class CptoptError(Exception):
    """Base class of all errors raised deliberately by cptopt."""


class InputError(CptoptError, ValueError):
    """Bad user input: a file, a column, a value or an option. Message is one line."""


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
