"""The project's exception types.

Every error raised on bad *user input* (a file, a folder, a checkpoint, an argument) is an
:class:`EdsrLabError`, so a notebook or script can catch one type. Each subclass also
derives from the closest built-in type, so ``except ValueError`` keeps working.
Messages say what was wrong and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class EdsrLabError(Exception):
    """Base class of every error this package raises on bad input."""


class ImageReadError(EdsrLabError, ValueError):
    """An image file could not be read.

    Attributes:
        path: the file that was asked for.
        reason: one sentence saying what was wrong with it.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")


class DatasetError(EdsrLabError, FileNotFoundError):
    """A dataset folder is missing or does not have the expected layout."""


class CheckpointError(EdsrLabError, ValueError):
    """A checkpoint file is missing, damaged, or not of the expected format."""


class ModelInputError(EdsrLabError, ValueError):
    """A tensor given to a model has the wrong shape, dtype, channel count or range."""


class VizInputError(EdsrLabError, ValueError):
    """An image or argument given to a plotting function cannot be drawn."""


class DatasetExistsError(EdsrLabError, FileExistsError):
    """A file that would be written already exists (pass ``overwrite=True`` to replace it)."""


class SizeMismatchError(EdsrLabError, ValueError):
    """An image does not have the shape or channel count the operation needs."""


class CheckpointExistsError(EdsrLabError, FileExistsError):
    """Training would overwrite a checkpoint that belongs to another run."""


class TrainOptionError(EdsrLabError, ValueError):
    """An option of a training run (``python -m edsr_lab train``) cannot work."""


class RunExistsError(EdsrLabError, FileExistsError):
    """A training output folder already holds another run (use --resume or --overwrite)."""
