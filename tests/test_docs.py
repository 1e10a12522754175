"""The documentation: runnable commands, the results pages' data and the built site.

- Every fenced block marked ``title="runnable"`` in README.md and docs/**/*.md is a block of
  shell commands a user can run as they are; each ``snakemake …`` command in one is
  dry-run (``snakemake -n`` plus its own arguments, a ``--profile`` included) in a
  temporary copy of the workflow's files, so nothing is written to the tree.
- ``docs/results_pages.py collect`` copies a real finished run (the tiny config's) and
  ``collect-blocks`` a benchmark script's block; the views render what was collected.
- The site builds with ``mkdocs build --strict``; served over HTTP, every same-site link and
  image answers 200, and in headless Chromium the results pages show their tables with the
  rows the data have and every image loads.
"""
import functools
import http.server
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urljoin, urlparse
from urllib.request import urlopen

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
WORKFLOW_FILES = ["Snakefile", "config.yaml", "configs", "workflow", "scripts", "profiles",
                  "envs"]
FENCE = re.compile(r'^(?P<indent>[ \t]*)```\w*[^\n]*title="runnable"[^\n]*\n'
                   r'(?P<body>.*?)^(?P=indent)```', re.S | re.M)


def results_pages():
    """docs/results_pages.py as a module (it is a script and a MkDocs hook, not a package)."""
    spec = importlib.util.spec_from_file_location("results_pages", DOCS / "results_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def runnable_blocks() -> list[tuple[str, str]]:
    """(``file:line``, body) of every block marked runnable."""
    out = []
    for path in documents():
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            body = "\n".join(l[len(m["indent"]):] for l in m["body"].splitlines())
            out.append((f"{path.relative_to(REPO)}:{line}", body))
    return out


def commands(body: str) -> list[list[str]]:
    """The shell commands of a block as argument lists (continuations joined, comments and
    the operators ``&&``, ``||``, ``;``, ``|`` splitting them; a leading ``time`` dropped)."""
    cmds = []
    for line in body.replace("\\\n", " ").splitlines():
        sub = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        sub.whitespace_split = True
        cur = []
        for token in sub:
            if token in (";", "&&", "||", "|", "&"):
                cmds.append(cur)
                cur = []
            else:
                cur.append(token)
        cmds.append(cur)
    cmds = [c for c in cmds if c]
    for c in cmds:
        while c and c[0] in ("time", "/usr/bin/time", "-v"):
            c.pop(0)
    return cmds


def snakemake_invocations() -> dict[tuple, list[str]]:
    """Every distinct ``snakemake`` argument list of the runnable blocks -> where it is."""
    found = {}
    for where, body in runnable_blocks():
        for cmd in commands(body):
            if cmd and cmd[0] == "snakemake":
                found.setdefault(tuple(cmd[1:]), []).append(where)
    return found


def test_runnable_blocks_parse_into_commands():
    blocks = runnable_blocks()
    assert len(blocks) >= 15, [w for w, _ in blocks]
    for where, body in blocks:
        cmds = commands(body)
        assert cmds, f"{where}: a runnable block without a command"
        for cmd in cmds:
            assert re.match(r"[\w./-]+$", cmd[0]), f"{where}: {cmd} does not start with a program"
    # the parser on a known block: continuation, comment, `&&`, quoted arguments
    assert commands("pip install x && snakemake --cores 2   # all\n"
                    "snakemake -n --config 'a=[b]' \\\n    --cores 1\n") == [
        ["pip", "install", "x"], ["snakemake", "--cores", "2"],
        ["snakemake", "-n", "--config", "a=[b]", "--cores", "1"]]
    assert len(snakemake_invocations()) >= 10


@pytest.mark.slow
def test_every_runnable_snakemake_command_dry_runs(tmp_path):
    """``snakemake -n`` of every runnable command, in a copy of the workflow's files."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    failures, t0 = [], time.perf_counter()
    invocations = snakemake_invocations()
    for args, where in invocations.items():
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", *args], cwd=work,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            failures.append(f"{', '.join(where)}: snakemake -n {shlex.join(args)}\n"
                            f"{(proc.stdout + proc.stderr)[-2000:]}")
    print(f"{len(invocations)} dry runs in {time.perf_counter() - t0:.0f} s")
    assert not failures, "\n\n".join(failures)
    assert not (work / "results").exists()  # a dry run builds nothing


def test_the_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


# --------------------------------------------------------------------------- the data


def result_blocks() -> list[tuple[Path, str]]:
    rp = results_pages()
    return [(p, m["args"]) for p in DOCS.rglob("*.md") for m in rp.BLOCK.finditer(p.read_text())]


def test_every_results_block_renders_and_every_folder_is_shown():
    rp = results_pages()
    used = set()
    for page, args in result_blocks():
        text = rp.render_block(args, "results")
        assert text.strip(), f"{page}: {args} renders nothing"
        used.add(args.split()[0])
    folders = {f.name for f in rp.folders()}
    assert folders - used == set(), "data folders no page shows"
    for folder in rp.folders():
        meta = rp.meta(folder.name)
        for key in ("title", "date", "machine", "command", "commit"):
            assert meta.get(key), f"docs/results/{folder.name}/meta.yaml lacks {key}"


def test_the_readme_figure_is_the_verdict_data_drawn(tmp_path):
    """The committed headline figure is what the script draws from the committed data."""
    from PIL import Image

    rp = results_pages()
    out = rp.headline_figure("verdict", tmp_path / "headline.png")
    committed = DOCS / "results" / "verdict" / "headline.png"
    assert "docs/results/verdict/headline.png" in (REPO / "README.md").read_text()
    assert Image.open(out).size == Image.open(committed).size


@pytest.mark.slow
def test_collect_copies_a_finished_run_and_the_views_render_it(tiny_run, tmp_path,
                                                                monkeypatch):
    workdir, _ = tiny_run
    rp = results_pages()
    monkeypatch.setattr(rp, "RESULTS", tmp_path / "results")
    folder = rp.collect("tiny", workdir / "results", "snakemake --cores 2 (tests/configs/tiny.yaml)")
    report = workdir / "results" / "report"
    assert (folder / "table1.csv").read_bytes() == (report / "table1.csv").read_bytes()
    assert (folder / "table1_replicates.csv").is_file()
    pngs = sorted(p.relative_to(report / "figures") for p in (report / "figures").rglob("*.png"))
    assert pngs and pngs == sorted(p.relative_to(folder / "figures")
                                   for p in (folder / "figures").rglob("*.png"))
    meta = yaml.safe_load((folder / "meta.yaml").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert meta["commit"].startswith(head) and "CPUs" in meta["machine"]
    assert meta["command"].startswith("snakemake --cores 2") and meta["date"][:2] == "20"
    table = pd.read_csv(report / "table1.csv")
    rendered = rp.render_block("tiny headline", ".")
    first = table.groupby("dataset", sort=False)["acquisition"].transform("first")
    assert rendered.count("\n| ") == len(table[table["acquisition"] == first])
    assert "tiny/meta.yaml" in rendered and head[:7] in rendered
    findings = rp.render_block("tiny findings", ".")  # the tiny run has no ±60°/2° acquisition
    assert "**paper convention**" in findings and "No finding applies" in findings
    assert rp.render_block("tiny figures", ".").count("![") == len(pngs)
    with pytest.raises(SystemExit, match="table1.csv"):
        rp.collect("empty", tmp_path, "x")


def test_collect_blocks_moves_a_script_block_into_csv(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import tune

    rp = results_pages()
    monkeypatch.setattr(rp, "RESULTS", tmp_path / "results")
    df = pd.DataFrame({"candidate": ["cn", "cn_x2"], "n": [4, 4],
                       "PSNR": ["30.303 [26.383, 34.224]", "33.260 [27.206, 39.314]"]})
    doc = tmp_path / "README.md"
    doc.write_text("# t\n\n<!-- tune:begin -->\n<!-- tune:end -->\ntail\n")
    reps = pd.DataFrame({"dataset": ["p22", "p22"], "method": ["cn", "cn_x2"],
                         "PSNR": [30.3, 33.26], "SSIM": [0.9, 0.91], "fsc_missing_auc": [0.3, 0.4]})
    tune.write_between_markers(doc, "\n".join(tune.markdown_block(
        reps, ["cn", "cn_x2"], df, "**cn: budget** (rule: keep)")), "tune")
    folder = rp.collect_blocks("tune", doc, "tune", "python benchmarks/tune.py")
    assert doc.read_text() == "# t\n\n<!-- tune:begin -->\n<!-- tune:end -->\ntail\n"
    back = pd.read_csv(folder / "cn-budget.csv")
    assert back.astype(str).values.tolist() == df.astype(str).values.tolist()
    rendered = rp.render_block("tune blocks", ".")
    assert "**cn: budget** (rule: keep)" in rendered and '??? info "per dataset' in rendered
    assert "| cn_x2 | 4 | 33.260 [27.206, 39.314] |" in rendered
    # the scripts' default target keeps an (empty) block for each of them
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for marker in ("tune", "tune-realistic", "sweep-sizing", "cn-capacity", "paper-ssim"):
        assert f"<!-- {marker}:begin -->\n<!-- {marker}:end -->" in readme, marker


# --------------------------------------------------------------------------- the site


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.urls.append(value)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built into a temporary directory and served over HTTP: its base URL."""
    pytest.importorskip("mkdocs", reason="the site needs the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(REPO / "mkdocs.yml"), "-d", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                               "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", out
    server.shutdown()


@pytest.mark.slow
def test_no_internal_link_of_the_site_is_broken(site):
    base, out = site
    checked, broken = set(), []
    pages = sorted(out.rglob("*.html"))
    assert len(pages) >= 25
    for page in pages:
        url = urljoin(base, page.relative_to(out).as_posix())
        parser = Links()
        parser.feed(page.read_text())
        for ref in parser.urls:
            target = urljoin(url, ref).split("#")[0]
            if urlparse(target).netloc != urlparse(base).netloc or target in checked:
                continue
            checked.add(target)
            try:
                with urlopen(target) as resp:
                    status = resp.status
            except HTTPError as exc:
                status = exc.code
            if status != 200:
                broken.append(f"{page.relative_to(out)}: {ref} -> {status}")
    assert not broken, "\n".join(broken)
    assert len(checked) > 100


def expected_rows() -> dict[str, list[int]]:
    """Page -> the body-row counts of the tables its results blocks must show, from the data."""
    res = DOCS / "results"

    def csv(name, file="table1.csv"):
        return pd.read_csv(res / name / file)

    verdict = csv("verdict")
    return {
        "results/verdict/": [len(verdict), len(csv("verdict", "findings_paper.csv")) // 3,
                             len(csv("verdict", "findings_fair.csv")) // 3],
        "results/default-run/": [csv("default")["dataset"].nunique()],
        "results/sweep/": [csv("sweep-cpu")["acquisition"].nunique() + 1],
        "results/dose/": [csv("dose")["acquisition"].nunique()],
        "results/realistic/": [len(csv("realistic"))],
        "results/paper-scale/": [len(csv(f"paper-cpu-{d}")) for d in ("spheres", "shapes", "p22")],
        "benchmarks/gpu/": [3],
        "results/": [len(list(res.glob("*/meta.yaml")))],
        "": [],
    }


@pytest.mark.slow
def test_results_pages_render_in_a_browser(site):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is in the docs extra: pip install -e '.[docs]'")
    base, _ = site
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        for path, rows in expected_rows().items():
            resp = page.goto(urljoin(base, path), wait_until="load")
            assert resp.status == 200, path
            counts = page.eval_on_selector_all(
                "article table", "ts => ts.map(t => t.querySelectorAll('tbody tr').length)")
            for n in rows:
                assert n in counts, f"{path}: no table with {n} rows (tables: {counts})"
                counts.remove(n)
            images = page.eval_on_selector_all(
                "article img", "is => is.map(i => [i.getAttribute('src'), i.complete, "
                "i.naturalWidth])")
            bad = [src for src, done, width in images if not (done and width > 0)]
            assert not bad, f"{path}: images that did not load: {bad}"
            assert "<!-- results" not in page.content()
        browser.close()
