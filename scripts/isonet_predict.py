"""Snakemake entry point: the final IsoNet model applied to the whole WBP tomogram."""
from wedgebench import runlog
from wedgebench.recon.isonet import predict

sm = snakemake  # noqa: F821
log = runlog.start(sm.log[0], sm.threads)
p = sm.params
out = predict.predict_files(sm.input.tomo, sm.input.model, sm.output[0], p.opts, p.invert,
                            p.tile, p.overlap, p.batch_size,
                            device=runlog.pick_device(p.device), log=log)
log.info("IsoNet reconstruction %s written", out.shape)
