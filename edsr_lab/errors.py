"""The project's exception types.

Every error raised on bad *user input* (a file, a folder, a checkpoint, an argument) is an
:class:`EdsrLabError`, so a notebook or script can catch one type. Each subclass also
derives from the closest built-in type, so ``except ValueError`` keeps working.
Messages say what was wrong and what to do about it. This is the only module that defines
or exports them (import them from here). It imports nothing heavy, so the command line can
use it before torch is loaded.

    EdsrLabError
    ├── ImageReadError (ValueError)        an image *file* cannot be read
    ├── DatasetError (FileNotFoundError)   a dataset folder is missing or malformed
    ├── DatasetExistsError (FileExistsError)
    ├── CheckpointError (ValueError)       a checkpoint file is missing, damaged, foreign
    ├── CheckpointExistsError (FileExistsError)
    ├── OutputExistsError (FileExistsError) an output file exists, replacing not asked for
    ├── OutputPathError (OSError)          an output cannot be written there
    ├── DownloadError (OSError)            a download failed or fetched the wrong file
    ├── ArchiveError (ValueError)          a zip/tar archive is damaged or unsafe
    ├── DeviceError (ValueError)           the requested device is not available
    ├── MissingDependencyError (ImportError) an optional package is not installed
    ├── DicomError (ValueError)            a DICOM file cannot be read or written
    ├── TrainOptionError (ValueError)      an option of ``python -m edsr_lab train``
    ├── RunExistsError (FileExistsError)   a training output folder holds another run
    ├── FileWriteError (OSError)           a file could not be written (disk full)
    ├── ResumeConfigError (ValueError)     resuming with changed optimiser settings
    ├── FolderInUseError (OSError)         another process holds the folder's lock
    └── BadArgumentError (ValueError)      an argument value the function cannot use
        ├── BadArgumentTypeError (TypeError)
        ├── SamplerError                   training samplers that do not fit together
        └── ImageInputError                an image *tensor/array* argument is unusable
            ├── ImageTypeError (TypeError) not a tensor, or an integer dtype
            ├── NonFiniteImageError        NaN or infinite values
            ├── ModelInputError            not what a model takes (batch, channels, range)
            ├── SizeMismatchError          shapes that do not fit together
            └── VizInputError              cannot be drawn
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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


class BadArgumentError(EdsrLabError, ValueError):
    """An argument (a scale, a protocol, a size, a channel count...) has a value the
    function cannot use. Subclasses say which kind of argument."""


class BadArgumentTypeError(BadArgumentError, TypeError):
    """An argument has the wrong type (e.g. a string where a whole number is needed)."""


class ImageInputError(BadArgumentError):
    """An image tensor or array given to a function has the wrong shape, channel count,
    range or values. Raised the same way by every module (:mod:`edsr_lab.validate`)."""


class ImageTypeError(ImageInputError, TypeError):
    """An image argument is not a tensor (or array) at all, or has an integer dtype where
    float values in [0, 1] are expected. Also a ``TypeError``."""


class NonFiniteImageError(ImageInputError):
    """An image holds NaN or infinite values (e.g. from a diverged model or a division by
    zero): every result computed from it would be NaN or meaningless."""


class ModelInputError(ImageInputError):
    """A tensor given to a model has the wrong shape, dtype, channel count or range."""


class VizInputError(ImageInputError):
    """An image or argument given to a plotting function cannot be drawn."""


class DatasetExistsError(EdsrLabError, FileExistsError):
    """A file that would be written already exists (pass ``overwrite=True`` to replace it)."""


class SizeMismatchError(ImageInputError):
    """An image does not have the shape or channel count the operation needs."""


class CheckpointExistsError(EdsrLabError, FileExistsError):
    """Training would overwrite a checkpoint that belongs to another run."""


class OutputExistsError(EdsrLabError, FileExistsError):
    """A file that would be written (an image, a checkpoint) already exists, and replacing
    it was not asked for."""


class OutputPathError(EdsrLabError, OSError):
    """An output cannot be written there: the path is a folder, lies under a regular file,
    or its folder is not writable."""


class DownloadError(EdsrLabError, OSError):
    """A download failed, broke off, or fetched a file that is not the expected one
    (wrong size or SHA-256). The message says whether running the command again resumes it."""


class ArchiveError(EdsrLabError, ValueError):
    """A zip/tar archive is damaged, unsafe to extract (escaping paths, links, a bomb), uses a
    feature Python cannot unpack (Deflate64, encryption), or does not hold the expected files."""


class DeviceError(EdsrLabError, ValueError):
    """The requested device (e.g. ``cuda``) is not available on this machine."""


class SamplerError(BadArgumentError):
    """Training samplers that do not fit together, or a saved sampler state that does not fit."""


class MissingDependencyError(EdsrLabError, ImportError):
    """An optional package is not installed; the message gives the command to install it."""


class DicomError(EdsrLabError, ValueError):
    """A DICOM file cannot be read, super-resolved or written (the message says why)."""


class TrainOptionError(EdsrLabError, ValueError):
    """An option of a training run (``python -m edsr_lab train``) cannot work."""


class RunExistsError(EdsrLabError, FileExistsError):
    """A training output folder already holds another run (use --resume or --overwrite)."""


class FileWriteError(EdsrLabError, OSError):
    """A file could not be written (e.g. the disk is full); the previous file is intact."""


class ResumeConfigError(EdsrLabError, ValueError):
    """Resuming with optimiser settings that differ from the checkpoint's, without saying
    whether to apply them (``train(..., resume_changes="apply")``)."""


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (what the CLI prints), or its type name if empty."""
    return " ".join(str(err).split()) or type(err).__name__


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"did you mean 'edsr'? "`` naming the known names closest to ``name``, or ``""``:
    the start of the hint every "unknown name" message gives."""
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(map(repr, close))}? " if close else ""


class FolderInUseError(EdsrLabError, OSError):
    """Another process holds the folder's lock (e.g. a training run writing into it); the
    message names that process."""
