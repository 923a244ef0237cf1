"""vlmbench: does a vision-language model recognise unsafe concepts, and judge them, in images and in text?

The public API for plugin authors lives here: the ``hookimpl`` marker, the backend contract
(:class:`Request`, :class:`Response`, :class:`Backend`, :class:`BackendSpec`) and :class:`UserError`.
"""

from vlmbench.backend import (
    Backend,
    BackendSpec,
    GenerationSettings,
    ImagePart,
    Message,
    Request,
    Response,
    TextPart,
)
from vlmbench.errors import UserError
from vlmbench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendSpec",
    "GenerationSettings",
    "ImagePart",
    "Message",
    "Request",
    "Response",
    "TextPart",
    "UserError",
    "hookimpl",
    "__version__",
]
