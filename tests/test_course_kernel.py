"""The course command starts its kernels with transport encryption (CurveZMQ keys), so the
kernel's "running over TCP without encryption" warning does not interrupt the output, and
shuts each kernel down after its notebook."""

from __future__ import annotations

import jupyter_client.manager
import nbformat

from edsr_lab import cli, config


def test_course_kernels_run_without_the_plain_tcp_warning(tmp_path, monkeypatch, capfd):
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(nb, tmp_path / "notebooks" / "00_tiny.ipynb")
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    started = []

    class RecordingKernelManager(jupyter_client.manager.KernelManager):
        def start_kernel(self, **kwargs):
            started.append(self)
            return super().start_kernel(**kwargs)

    monkeypatch.setattr(jupyter_client.manager, "KernelManager", RecordingKernelManager)
    out = tmp_path / "executed"
    assert cli.main(["course", "--out", str(out), "--timeout", "60"]) == 0
    ran = nbformat.read(out / "00_tiny.ipynb", as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "42\n"
    captured = capfd.readouterr()
    assert "all 1 notebooks ran" in captured.out
    assert "without encryption" not in captured.out + captured.err
    # Each kernel is shut down after its notebook, not left running until the command exits.
    assert started and not any(km.is_alive() for km in started)
