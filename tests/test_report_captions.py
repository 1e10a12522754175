"""The Snakemake HTML report renders every caption without a docutils system message.

Snakemake renders each caption of ``workflow/report/`` (and the report description
``workflow.rst``) as a Jinja template, then as reStructuredText with docutils; markup that
docutils cannot read (e.g. ``|x|``, a substitution reference) becomes a red "System
Message" box in the report instead of the text.
"""
import io
import types

import docutils.core
import docutils.nodes
import jinja2
import pytest
import yaml
from snakemake.utils import validate

from workflow_utils import REPO, run_snakemake

CAPTIONS = sorted((REPO / "workflow" / "report").glob("*.rst"))
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

#: What docutils writes into HTML for a system message (and for the text it flags).
HTML_MARKERS = ("system-message", "System Message", "Docutils System Messages",
                "Undefined substitution referenced", "problematic", "INFO/1", "WARNING/2",
                "ERROR/3", "SEVERE/4")


def rst_messages(text: str) -> list[str]:
    """Every docutils message of level >= 2 (warning) about ``text``: those the parser puts
    in the tree and those of the transforms (substitutions, references), which the HTML
    writer appends as "Docutils System Messages"."""
    doc = docutils.core.publish_doctree(
        text, settings_overrides={"report_level": 2, "halt_level": 5,
                                  "warning_stream": io.StringIO()})
    found = list(doc.findall(docutils.nodes.system_message)) + list(doc.transform_messages)
    return [m.astext() for m in found if m["level"] >= 2]


def render(path, config: dict) -> str:
    """The caption as Snakemake renders it before docutils reads it (its Jinja settings)."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    snakemake = types.SimpleNamespace(
        config=config, wildcards=types.SimpleNamespace(dataset="spheres", acq="tilt-60_60_step2"))
    return env.from_string(path.read_text()).render(snakemake=snakemake, categories={},
                                                    files=[])


def default_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(SCHEMA))  # the schema's defaults, as the workflow fills them
    return config


def test_the_checker_finds_parser_and_transform_messages():
    """It would have caught Table 1's caption (an undefined substitution, found by a
    transform) and a parser error (an unclosed literal)."""
    assert any("Undefined substitution referenced" in m
               for m in rst_messages("``sphere_zx_dev`` = |z/x extent ratio − 1| (0 is best)"))
    assert rst_messages("an ``unclosed literal")
    assert rst_messages("``sphere_zx_dev`` = \\|z/x extent ratio − 1\\|") == []


@pytest.mark.parametrize("caption", CAPTIONS, ids=[p.name for p in CAPTIONS])
def test_every_caption_is_clean_restructuredtext(caption):
    text = render(caption, default_config())
    assert "{{" not in text and "{%" not in text
    assert rst_messages(text) == [], text


def test_report_of_a_tiny_run_has_no_system_message(tiny_run):
    workdir, cfg = tiny_run
    proc = run_snakemake(workdir, cfg, "--report", "report-captions.html")
    html = (workdir / "report-captions.html").read_text()
    assert "Table 1" in html and "sphere_zx_dev" in html  # the table's caption is there
    found = [m for m in HTML_MARKERS if m in html]
    assert not found, found
    log = proc.stdout + proc.stderr
    assert not [m for m in ("(WARNING/2)", "(ERROR/3)", "(SEVERE/4)") if m in log], log[-3000:]
