"""The rows ``reproduce`` makes, and the paper's name for each (no torch: the command
line builds its choices from here and ``--help`` must answer at once).

Table 2 rows are training runs (Lim et al. 2017, Table 1 presets and Sec. 4.4); Table 3
rows are the official weights (:data:`edsr_lab.weights.OFFICIAL`). The ``paper`` names are
the row keys of :data:`edsr_lab.paper.TABLE2` and :data:`edsr_lab.paper.TABLE3`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SETS", "TABLE2_ROWS", "TABLE3_MODELS", "Table2Row", "Table3Model"]


@dataclass(frozen=True)
class Table2Row:
    """One trained row of Table 2.

    Attributes:
        key: its ``--rows`` name, also the start of its run folder's name.
        paper: the paper's row (a key of ``paper.TABLE2``).
        model: the ``train`` preset (``RunConfig.model``).
        loss: ``"l1"`` or ``"l2"``.
        plus: the paper's self-ensemble row scored from the same run (``"EDSR+"``), or None.
    """

    key: str
    paper: str
    model: str
    loss: str
    plus: str | None = None

    @property
    def multiscale(self) -> bool:
        """MDSR: one run learns x2, x3 and x4 together (the paper's multi-scale training)."""
        return self.model.startswith("mdsr")


#: Table 2's trained rows, in the paper's column order (SRResNet reproduced with BN and
#: L2, then L1; the baselines without BN; the big models with residual scaling / 80 blocks).
TABLE2_ROWS: tuple[Table2Row, ...] = (
    Table2Row("srresnet-l2", "SRResNet L2", "srresnet", "l2"),
    Table2Row("srresnet-l1", "SRResNet L1", "srresnet", "l1"),
    Table2Row("edsr-baseline", "EDSR baseline", "edsr_baseline", "l1"),
    Table2Row("mdsr-baseline", "MDSR baseline", "mdsr_baseline", "l1"),
    Table2Row("edsr", "EDSR", "edsr", "l1", plus="EDSR+"),
    Table2Row("mdsr", "MDSR", "mdsr", "l1", plus="MDSR+"),
)


@dataclass(frozen=True)
class Table3Model:
    """One family of official weights scored for Table 3.

    Attributes:
        key: its ``--models`` name.
        paper: the paper's row (a key of ``paper.TABLE3``; the baselines have none there).
        weights: the registry name, with ``{s}`` for the scale (``edsr_x{s}``), or one name
            for a multi-scale model (``mdsr``).
        plus: the paper's self-ensemble row (``"EDSR+"``), or None (the baselines).
    """

    key: str
    paper: str
    weights: str
    plus: str | None = None

    def weights_name(self, scale: int) -> str:
        return self.weights.format(s=scale)


#: Table 3's models, in the paper's order, then the baselines (official weights exist,
#: the paper's Table 3 has no row for them).
TABLE3_MODELS: tuple[Table3Model, ...] = (
    Table3Model("edsr", "EDSR", "edsr_x{s}", plus="EDSR+"),
    Table3Model("mdsr", "MDSR", "mdsr", plus="MDSR+"),
    Table3Model("edsr-baseline", "EDSR baseline", "edsr_baseline_x{s}"),
    Table3Model("mdsr-baseline", "MDSR baseline", "mdsr_baseline"),
)

#: Table 3's data sets (``evaluate --data`` keys), in the paper's order.
SETS = ("set5", "set14", "b100", "urban100")
