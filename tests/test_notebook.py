"""A `Network` in Jupyter: a notebook executed by a real kernel (nbclient, ipykernel) shows the
summary table and the diagram as HTML, while `summary()` prints plain text."""

import re
import xml.etree.ElementTree as ET

import pytest
from conftest import SPECS

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the dev extra)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (the dev extra)")


@pytest.mark.slow
def test_network_displays_as_table_and_diagram_in_a_notebook(tmp_path):
    spec = SPECS / "resnet18.cnn"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import cnnspec\nnet = cnnspec.load({str(spec)!r})\nnet"),
        nbformat.v4.new_code_cell("print(net.summary(depth=1))"),
    ])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    shown = notebook.cells[0].outputs
    assert [o["output_type"] for o in shown] == ["execute_result"]
    data = shown[0]["data"]
    assert set(data) == {"text/html", "text/plain"}
    assert data["text/plain"].startswith("<Network resnet18: 11,689,512 params")
    html = data["text/html"]
    # the table: one row per row of `summary --depth 2`, with ResNet-18's stem conv (64*3*7*7 weights)
    rows = re.findall(r"<tr><td>(.*?)</td>", html)
    assert rows[:2] == ["conv1", "bn1"] and len(rows) == 15
    assert f"<td>{64 * 3 * 7 * 7:,}</td>" in html
    svg = ET.fromstring(re.search(r"<svg .*</svg>", html, re.S).group(0))
    boxes = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("data-row")]
    assert len(boxes) == len(rows)
    printed = notebook.cells[1].outputs
    assert [o["output_type"] for o in printed] == ["stream"] and printed[0]["name"] == "stdout"
    text = printed[0]["text"]
    assert text.startswith("resnet18: input 3x224x224") and "<" not in text and "layer4" in text
