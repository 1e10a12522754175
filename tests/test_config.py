"""Bad configuration values stop the run before any job, naming the key."""
import pytest
import yaml

from wedgebench.config import ConfigError, check_config
from workflow_utils import REPO, run_snakemake, tiny_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

BAD = [
    ({"acquisitions": [{"range": [-60, 60], "step": 0}]}, "acquisitions.0.step"),
    ({"acquisitions": [{"range": [-60, 60], "step": -2}]}, "acquisitions.0.step"),
    ({"acquisitions": [{"range": [-95, 60], "step": 2}]}, "acquisitions.0.range.0"),
    ({"acquisitions": [{"range": [40, -40], "step": 2}]}, "acquisitions.0"),
    ({"datasets": {"x": {"kind": "cubes", "shape": [8, 8, 8]}}}, "datasets.x.kind"),
    ({"datasets": {"x": {"kind": "custom", "shape": [8, 8, 8],
                         "params": {"path": "/nonexistent/gt.mrc"}}}}, "datasets.x.params.path"),
    ({"datasets": {"../x": {"kind": "spheres", "shape": [8, 8, 8]}}}, "datasets"),
    ({"datasets": {"/abs": {"kind": "spheres", "shape": [8, 8, 8]}}}, "datasets"),
    ({"datasets": {"x": {"kind": "spheres", "shape": [8, 0, 8]}}}, "datasets.x.shape.1"),
    ({"methods": ["imod_wbp", "sirt"]}, "methods.1"),
    ({"datasets": {"x": {"kind": "spheres", "shape": [8, 8, 8], "params": {"count": -1}}}},
     "datasets.x.params.count"),
    ({"datasets": {"x": {"kind": "shapes", "shape": [8, 8, 8],
                         "params": {"kinds": ["torus"]}}}}, "datasets.x.params.kinds.0"),
    ({"datasets": {"x": {"kind": "tiltseries", "shape": [8, 8, 8], "params": {}}}},
     "datasets.x.params"),
    ({"run_datasets": ["nope"]}, "run_datasets"),
    ({"cn": {"chain_start": "authors", "warm_start": "anchor"}}, "cn.warm_start"),
    ({"methods": {"cn_x": {"kind": "cn", "chain_start": "authors", "ensemble": True}}},
     "methods.cn_x"),
    ({"cn": {"chain_start": "middle"}}, "cn.chain_start"),
]


@pytest.mark.parametrize("override,key", BAD, ids=[k for _, k in BAD])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        check_config(tiny_config(**override), SCHEMA)
    assert f"config key '{key}" in str(err.value)


def test_good_configs_pass():
    from wedgebench.config import deep_merge

    check_config(tiny_config(), SCHEMA)
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    check_config(default, SCHEMA)
    for name in ("configs/paper.yaml", "configs/sweep.yaml", "configs/verdict.yaml"):
        check_config(deep_merge(default, yaml.safe_load((REPO / name).read_text())), SCHEMA)


@pytest.mark.parametrize("override,key", [BAD[0], BAD[5]], ids=[BAD[0][1], BAD[5][1]])
def test_bad_config_stops_snakemake_before_any_job(tmp_path, override, key):
    proc = run_snakemake(tmp_path, tiny_config(**override), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config key '{key}" in out
    assert not (tmp_path / "results").exists()


def test_isonet_settings_merge_per_dataset_overrides_deeply():
    from wedgebench.config import isonet_settings

    isonet = {"iterations": 10, "unet": {"filters": [8, 16, 32], "dropout": 0.0},
              "per_dataset": {"p22": {"iterations": 20, "unet": {"dropout": 0.3}}}}
    p22 = isonet_settings(isonet, "p22")
    assert p22 == {"iterations": 20, "unet": {"filters": [8, 16, 32], "dropout": 0.3}}
    assert isonet_settings(isonet, "spheres") == {"iterations": 10,
                                                  "unet": {"filters": [8, 16, 32], "dropout": 0.0}}
    assert isonet["unet"]["dropout"] == 0.0  # the config itself is not modified
