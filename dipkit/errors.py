"""The errors dipkit raises on bad input, each with a message that says what to do."""


class DipkitError(ValueError):
    """Base class of every error dipkit raises on bad input or a failed fit.

    It subclasses :class:`ValueError` so that code catching bad arguments generically still
    works; catch ``DipkitError`` to handle dipkit's own errors only.
    """


class ImageError(DipkitError):
    """A file that is missing, empty, not an image, or an image of an unusable shape or dtype."""


class ShapeError(DipkitError):
    """Tensors of the wrong shape: an image too small for the network, a mask of another size."""


class DivergenceError(DipkitError, RuntimeError):
    """The fit diverged (NaN or infinite loss) and could not be recovered by backtracking."""
