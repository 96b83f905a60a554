"""Reproduce the paper's tables: ``python -m edsr_lab reproduce table2|table3``.

- :func:`edsr_lab.reproduce.benchmark.table3`: the official weights (EDSR x2/x3/x4, MDSR
  and the baselines; EDSR+/MDSR+ with the geometric self-ensemble) scored on Set5, Set14,
  B100 and Urban100 with the benchmark protocol, beside Lim et al. 2017, Table 3. Missing
  weights and benchmark sets are downloaded first.
- :func:`edsr_lab.reproduce.ablation.table2`: the ablation rows of Table 2 (SRResNet with
  L2 and L1, the EDSR and MDSR baselines, EDSR, MDSR, and EDSR+/MDSR+) trained on DIV2K
  with an updates budget, one resumable run folder per row, then scored on DIV2K
  0801-0810 with the DIV2K protocol, beside the paper's Table 2.

Both write a markdown table with the paper's values beside the measured ones and the
provenance (git commit, device, torch version, date, the command; the weights files and
their SHA-256 for Table 3, the updates for Table 2). :mod:`~edsr_lab.reproduce.rows`
names the rows (no torch: the command line reads it); :mod:`~edsr_lab.reproduce.report`
writes the markdown.

    >>> from edsr_lab.reproduce.ablation import table2       # doctest: +SKIP
    >>> from edsr_lab.reproduce.benchmark import table3      # doctest: +SKIP
"""
