"""TEMPORARY shim until the notebooks switch (lead's integration step): a complete run now
lives in :mod:`edsr_lab.train.runner`; write ``from edsr_lab.train import run``."""

from edsr_lab.train.config import RunConfig
from edsr_lab.train.runner import RunResult, run

__all__ = ["RunConfig", "RunResult", "run"]
