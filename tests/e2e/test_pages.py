"""What a newcomer sees after `smap demo --quick`, rendered in Debian's headless chromium (a
screenshot of each page is left in the test's temp folder): MLflow's experiments and registry
describe smap's tasks, the dashboard has no empty section, and the service's docs page offers
an example that the service answers."""

import html
import json
import re
from urllib.parse import quote

import httpx
import pytest

from pipelines.cli import main
from tests.e2e.browser import inked, render

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, monkeypatch_module):
    """A quick demo's data directory and settings."""
    from configs.settings import load_settings

    root = tmp_path_factory.mktemp("demo")
    monkeypatch_module.setenv("SMAP_DATA_DIR", str(root / "data"))
    assert main(["demo", "--quick"]) == 0
    return load_settings()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def pages(demo):
    from pipelines.ui import open_pages

    with open_pages(demo) as opened:
        yield opened


def test_mlflow_lists_smaps_experiments_described_and_no_default(pages, tmp_path):
    dom = render(pages.mlflow, tmp_path, "experiments")
    names = set(re.findall(r">(smap-[a-z]+)<", dom))
    assert {"smap-engagement", "smap-segmentation", "smap-monitoring"} <= names
    assert ">Default<" not in dom
    assert "engagement (regression): predicts engagement rate" in html.unescape(dom)
    assert inked(tmp_path / "experiments.png") > 0.02


def test_an_experiment_opens_in_the_model_training_view(pages, demo, tmp_path):
    import mlflow

    from training.tracking import use_tracking

    use_tracking(demo)
    experiment = mlflow.get_experiment_by_name("smap-engagement")
    base, query = pages.mlflow.split("#/experiments")
    dom = render(f"{base}#/experiments/{experiment.experiment_id}{query}", tmp_path, "runs")
    assert ">train-engagement<" in dom  # the runs table of the model-training view
    assert "Detect Issues" not in dom and "No data available" not in dom  # not the GenAI one


def test_the_registered_model_page_shows_its_description(pages, tmp_path):
    base, query = pages.mlflow.split("#/experiments")
    dom = html.unescape(render(f"{base}#/models/engagement{query}", tmp_path, "model"))
    assert "engagement: predicts engagement rate over the post's first 7 days" in dom
    assert "engagement_v3" in dom
    version = html.unescape(render(f"{base}#/models/engagement/versions/1{query}", tmp_path, "v1"))
    assert "Gate: " in version and "trained on " in version  # the version's own description


def test_the_dashboard_after_the_demo_has_no_empty_section(pages, tmp_path):
    dom = render(pages.dashboard, tmp_path, "dashboard")
    sections = re.findall(r'<section[^>]*id="([^"]+)"', dom)
    assert len(sections) >= 6, sections
    assert 'class="note empty"' not in dom, re.findall(r'class="note empty">([^<]*)', dom)
    assert inked(tmp_path / "dashboard.png") > 0.05


def test_the_swagger_example_for_predict_engagement_is_answered(demo, tmp_path):
    from pipelines.serving import local_service

    with local_service(demo) as (url, _):
        spec = httpx.get(f"{url}/docs.json", timeout=30).json()
        operation = spec["paths"]["/predict_engagement"]["post"]
        tag, operation_id = operation["tags"][0], operation["operationId"]
        # the operation opened by its deep link: Swagger shows its example body
        dom = html.unescape(render(f"{url}/#/{quote(tag)}/{operation_id}", tmp_path, "operation"))
        assert "<title>smap prediction service</title>" in dom
        page = render(f"{url}/", tmp_path, "swagger")  # the page as it opens, for its screenshot
        assert "github-corner" not in page and "googletagmanager" not in page
        assert inked(tmp_path / "swagger.png") > 0.02
        assert spec["info"]["title"] in dom
        shown = re.search(r'<code class="language-json"[^>]*>(.*?)</code>', dom, re.S)
        assert shown, "no example body on the page"
        example = json.loads(re.sub(r"<[^>]+>", "", shown.group(1)))
        assert example == operation["requestBody"]["content"]["application/json"]["example"]
        answer = httpx.post(f"{url}/predict_engagement", json=example, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["lineage"]["model"] == "engagement"
