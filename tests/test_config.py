"""Bad configuration values stop the run before any job, naming the key."""
import pytest

from workflow_utils import run_snakemake, tiny_config

BAD = [
    ({"acquisitions": [{"range": [-60, 60], "step": 0}]}, "acquisitions.0.step"),
    ({"acquisitions": [{"range": [-60, 60], "step": -2}]}, "acquisitions.0.step"),
    ({"acquisitions": [{"range": [-95, 60], "step": 2}]}, "acquisitions.0.range.0"),
    ({"acquisitions": [{"range": [40, -40], "step": 2}]}, "acquisitions.0"),
    ({"datasets": {"x": {"kind": "cubes", "shape": [8, 8, 8]}}}, "datasets.x.kind"),
    ({"datasets": {"x": {"kind": "custom", "shape": [8, 8, 8],
                         "params": {"path": "/nonexistent/gt.mrc"}}}}, "datasets.x.params.path"),
    ({"datasets": {"../x": {"kind": "spheres", "shape": [8, 8, 8]}}}, "datasets"),
    ({"datasets": {"x": {"kind": "spheres", "shape": [8, 0, 8]}}}, "datasets.x.shape.1"),
    ({"methods": ["imod_wbp", "sirt"]}, "methods.1"),
    ({"datasets": {"x": {"kind": "spheres", "shape": [8, 8, 8], "params": {"count": -1}}}},
     "datasets.x.params.count"),
    ({"datasets": {"x": {"kind": "shapes", "shape": [8, 8, 8],
                         "params": {"kinds": ["torus"]}}}}, "datasets.x.params.kinds.0"),
    ({"datasets": {"x": {"kind": "tiltseries", "shape": [8, 8, 8], "params": {}}}},
     "datasets.x.params"),
    ({"run_datasets": ["nope"]}, "run_datasets"),
]


@pytest.mark.parametrize("override,key", BAD, ids=[k for _, k in BAD])
def test_bad_config_stops_before_any_job(tmp_path, override, key):
    proc = run_snakemake(tmp_path, tiny_config(**override), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config key '{key}" in out
    assert not (tmp_path / "results").exists()
