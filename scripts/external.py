"""Snakemake entry point: run an external method (a command or a Python script) on one tilt
series, check what it wrote, and only then write the reconstruction."""
from pathlib import Path

from wedgebench import runlog
from wedgebench.io import read_mrc, write_mrc
from wedgebench.recon import external

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
workdir = Path(p.workdir)
workdir.mkdir(parents=True, exist_ok=True)
scratch = workdir / "output.mrc"  # the method writes here; recon/ gets the checked copy
scratch.unlink(missing_ok=True)
inputs = {"tiltseries": sm.input.mrc, "tlt": sm.input.tlt, "tomogram": sm.input.get("tomogram") or ""}
pixel = read_mrc(sm.input.mrc)[1]
if p.command:
    values = external.command_values(inputs, scratch, p.thickness, pixel, sm.threads, workdir)
    command = external.format_command(p.command, values)
    log.info("method %s: %s", p.method, command)
    external.run_command(p.method, command, sm.log[0])
else:
    log.info("method %s: script %s", p.method, p.script)
    params = {"thickness": p.thickness, "voxel_size": pixel, "workdir": str(workdir)}
    external.run_script(p.method, p.script, inputs, scratch, params, sm.threads, sm.log[0],
                        dict(sm.wildcards))
vol, _ = external.load_checked(p.method, scratch, p.shape)
log.info("method %s: output %s checked (shape %s, range %.4g..%.4g)", p.method, scratch,
         vol.shape, vol.min(), vol.max())
write_mrc(sm.output[0], vol, pixel)
