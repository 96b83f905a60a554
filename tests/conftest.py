"""Test-session settings.

Under pytest-xdist each worker (and each notebook kernel it starts) would use as many
torch threads as there are cores; two workers on two cores then oversubscribe the CPU
and run several times slower. One thread per worker keeps the run fast and results
(losses printed in ignored cells, but also asserted margins) as on a 1-thread laptop.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # before torch is imported by any test, and inherited by notebook kernels
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
