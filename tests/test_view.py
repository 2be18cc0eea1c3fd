"""`cnnspec view`: the HTML page in a real browser (headless Chromium through selenium): a closed
group opens in place, the panel shows the summary row of the layer under the pointer, and the
page's screenshot is a picture, not a blank."""

import io
import json
import shutil
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from conftest import SPECS

import cnnspec
from cnnspec.analysis.stats import describe_field
from cnnspec.cli import main
from cnnspec.draw.view import to_html


class Collect(HTMLParser):
    """Tags and attributes of a page, and whether it refers to anything outside itself."""

    def __init__(self):
        super().__init__()
        self.nodes, self.external = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.nodes.append((tag, attrs))
        for key in ("src", "href"):
            if attrs.get(key):
                self.external.append(attrs[key])


def test_page_is_self_contained_with_a_box_per_layer_and_group():
    network = cnnspec.load(SPECS / "resnet18.cnn")
    page = to_html(network, depth=2)
    parsed = Collect()
    parsed.feed(page)
    assert parsed.external == [] and "http" not in page.replace("http://www.w3.org", "")
    keys = [a["data-key"] for tag, a in parsed.nodes if "data-key" in a]
    assert len(keys) == len(set(keys))
    scopes = {s for r in network.rows for s in r.scopes}
    assert set(keys) == {f"r{r.id}" for r in network.rows} | {f"s{s}" for s in scopes}
    data = json.loads(page.split('<script id="rows" type="application/json">', 1)[1].split("</script>", 1)[0])
    # a group's row is the sum of its layers', as `summary --depth 2` folds them
    folded = {r["name"]: r for r in json.loads(network.summary(format="json", depth=2))["layers"]}
    assert data["slayer2.0"]["params"] == f"{folded['layer2.0']['params']:,}" == "230,144"
    assert data["slayer2.0"]["rf"] == folded["layer2.0"]["receptive_field"]
    conv1 = next(r for r in network.rows if r.path == "conv1")
    record = data[f"r{conv1.id}"]
    # the line is the layer's in the spec (the file name comes from the layer's span)
    assert record.pop("line").endswith(":39")
    assert record == {"name": "conv1", "kind": "conv", "output": "64x112x112", "params": "9,408",
                                    "macs": f"{64 * 3 * 49 * 112 * 112:,}", "rf": describe_field(conv1.rf),
                                    "activation": f"{64 * 112 * 112 * 4 / 2**20:.1f} MB"}


@pytest.mark.parametrize("name", ["unet", "inception_v3", "densenet121", "mobilenet_v3_large"])
def test_every_zoo_row_and_scope_is_one_box(name):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    parsed = Collect()
    parsed.feed(to_html(network))
    keys = [a["data-key"] for tag, a in parsed.nodes if "data-key" in a]
    scopes = {s for r in network.rows for s in r.scopes}
    assert sorted(keys) == sorted([f"r{r.id}" for r in network.rows] + [f"s{s}" for s in scopes])


def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no headless browser: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.mark.slow
def test_view_in_a_browser(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    out = tmp_path / "net.html"
    result = CliRunner().invoke(main, ["view", str(SPECS / "resnet18.cnn"), "-o", str(out), "--depth", "1"])
    assert result.exit_code == 0, result.output
    driver = browser()
    try:
        driver.get(out.as_uri())
        group = driver.find_element(By.CSS_SELECTOR, '.group[data-scope="layer2"]')
        inner = group.find_element(By.CSS_SELECTOR, '.group[data-scope="layer2.0"]')
        assert "closed" in group.get_attribute("class") and not inner.is_displayed()
        box = group.find_element(By.CSS_SELECTOR, ":scope > .group-box")
        assert box.is_displayed() and "525,568 params" in box.text  # 230,144 + 295,424
        group.find_element(By.CSS_SELECTOR, ":scope > .title .toggle").click()
        assert "open" in group.get_attribute("class") and inner.is_displayed() and not box.is_displayed()
        # layer2.0 is nested two deep: still closed inside the opened stage, until it is opened too
        inner.find_element(By.CSS_SELECTOR, ":scope > .title .toggle").click()
        layer = driver.find_element(By.XPATH, '//div[contains(@class, "node") and text()="conv1: conv 128 3x3 /2"]')
        assert layer.is_displayed()
        ActionChains(driver).move_to_element(layer).perform()
        panel = {cell.get_attribute("data-field"): cell.text
                 for cell in driver.find_elements(By.CSS_SELECTOR, "#panel td")}
        network = cnnspec.load(SPECS / "resnet18.cnn")
        row = next(r for r in network.rows if r.path == "layer2.0.conv1")
        assert panel["name"] == "layer2.0.conv1" and panel["output"] == "128x28x28"
        assert panel["params"] == "73,728" == f"{128 * 64 * 3 * 3:,}"
        assert panel["macs"] == f"{128 * 64 * 9 * 28 * 28:,}"
        assert panel["line"].endswith(f"resnet.cnn:{row.line}") and panel["rf"] == describe_field(row.rf)
        layer.click()  # clicked, the row stays when the pointer leaves
        ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "header")).perform()
        assert driver.find_element(By.CSS_SELECTOR, '#panel td[data-field="name"]').text == "layer2.0.conv1"
        picture = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the images extra)")
    image = image_module.open(io.BytesIO(picture)).convert("RGB")
    colours = image.getcolors(1 << 20)
    assert colours is not None and len(colours) > 10
    background = max(colours)[0]
    share = 1 - background / (image.width * image.height)
    assert 0.03 < share < 0.9, share


def test_view_command_errors(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input x: 3x32x32\nconv 8 3x3 stride=0\n")
    result = CliRunner().invoke(main, ["view", str(bad), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 1 and "error[" in result.output and not (tmp_path / "x.html").exists()
    result = CliRunner().invoke(main, ["view", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "no" / "x.html")])
    assert result.exit_code == 1 and "cannot write" in result.output
    result = CliRunner().invoke(main, ["view", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "x.html"), "--depth", "0"])
    assert result.exit_code == 2
