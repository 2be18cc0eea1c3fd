"""Text given in memory in place of files (`texts=`, path -> text): the spec itself and its imports
are read from there, as the language server reads an editor's unsaved documents. Each result is
compared with the same text written to disk and loaded as usual."""

import os
from pathlib import Path

import pytest

import cnnspec
from cnnspec.network import check

MAIN = 'input x: 3x16x16\nimport "parts/unit.cnn"\nunit(8)\nunit(16)\n'
UNIT = "block unit(c) {\n  conv c 3x3 pad=1\n  bn\n  relu\n}\n"
#: the version held in memory: a wider kernel and no batch norm
UNIT_EDITED = "block unit(c) {\n  conv c 5x5 pad=2\n  relu\n}\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def figures(net) -> list:
    return [(r.path, r.kind, r.out_shape, r.params, r.macs, r.line) for r in net.rows]


def test_an_import_is_read_from_texts_instead_of_the_disk(tmp_path):
    on_disk = write(tmp_path / "a", {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    reference = write(tmp_path / "b", {"main.cnn": MAIN, "parts/unit.cnn": UNIT_EDITED})
    net = cnnspec.load(on_disk / "main.cnn", texts={on_disk / "parts" / "unit.cnn": UNIT_EDITED})
    assert figures(net) == figures(cnnspec.load(reference / "main.cnn"))
    assert "bn" not in [r.kind for r in net.rows]
    # the disk is untouched and still reads as before
    assert "bn" in [r.kind for r in cnnspec.load(on_disk / "main.cnn").rows]


def test_the_spec_itself_and_a_file_never_saved(tmp_path):
    folder = write(tmp_path / "a", {"main.cnn": "input x: 1x8x8\nrelu\n"})
    reference = write(tmp_path / "b", {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    # main.cnn as edited in memory; parts/unit.cnn exists nowhere on disk
    net = cnnspec.load(folder / "main.cnn", texts={folder / "main.cnn": MAIN, folder / "parts/unit.cnn": UNIT})
    assert figures(net) == figures(cnnspec.load(reference / "main.cnn"))
    assert not (folder / "parts").exists()


def test_keys_are_paths_as_the_loader_resolves_them(tmp_path, monkeypatch):
    folder = write(tmp_path, {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    monkeypatch.chdir(folder)
    expected = figures(cnnspec.load("main.cnn", texts={str(folder / "parts" / "unit.cnn"): UNIT_EDITED}))
    # a relative key, a key through `..`, and a symbolic link to the file all name the same file
    assert figures(cnnspec.load("main.cnn", texts={"parts/unit.cnn": UNIT_EDITED})) == expected
    assert figures(cnnspec.load("main.cnn", texts={"parts/../parts/unit.cnn": UNIT_EDITED})) == expected
    os.symlink(folder / "parts" / "unit.cnn", folder / "link.cnn")
    assert figures(cnnspec.load("main.cnn", texts={"link.cnn": UNIT_EDITED})) == expected


def test_check_and_loads_take_texts_too(tmp_path):
    folder = write(tmp_path, {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    renamed = UNIT.replace("block unit", "block other")
    _, diagnostics, _ = check(folder / "main.cnn", texts={folder / "parts/unit.cnn": renamed})
    assert [(d.code, d.span.line) for d in diagnostics] == [("E101", 3), ("E101", 4)]
    net = cnnspec.loads(MAIN, root=folder, origin=folder / "main.cnn", texts={folder / "parts/unit.cnn": UNIT_EDITED})
    assert figures(net) == figures(cnnspec.load(folder / "main.cnn", texts={folder / "parts/unit.cnn": UNIT_EDITED}))


def test_text_from_texts_reads_as_a_file_would(tmp_path):
    folder = write(tmp_path, {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    unit = folder / "parts" / "unit.cnn"
    # Windows and old-Mac newlines are read as `\n`, as `open` reads a file
    crlf = cnnspec.load(folder / "main.cnn", texts={unit: UNIT_EDITED.replace("\n", "\r\n")})
    cr = cnnspec.load(folder / "main.cnn", texts={unit: UNIT_EDITED.replace("\n", "\r")})
    plain = cnnspec.load(folder / "main.cnn", texts={unit: UNIT_EDITED})
    assert figures(crlf) == figures(cr) == figures(plain)
    assert [r.line for r in plain.rows if r.kind == "conv"] == [2, 2]
    # the size limit applies as it does to a file, at the import that names it
    huge = "relu\n" * 450_000
    (folder / "huge_on_disk.cnn").write_text(huge)
    _, from_disk, _ = check(folder / "main.cnn", texts={folder / "main.cnn": 'input x: 3x8x8\nimport "huge_on_disk.cnn"\n'})
    _, from_texts, _ = check(folder / "main.cnn", texts={folder / "main.cnn": 'input x: 3x8x8\nimport "huge.cnn"\n',
                                                         folder / "huge.cnn": huge})
    assert [(d.code, d.span.line) for d in from_disk] == [(d.code, d.span.line) for d in from_texts] == [("E012", 2)]


def test_imports_from_texts_stay_inside_the_spec_s_folder_tree(tmp_path):
    folder = write(tmp_path / "project", {"main.cnn": 'input x: 3x8x8\nimport "../outside.cnn"\nunit(4)\n'})
    _, diagnostics, _ = check(folder / "main.cnn", texts={tmp_path / "outside.cnn": UNIT})
    assert [d.code for d in diagnostics] == ["E130"]


@pytest.mark.parametrize("texts, message", [
    (["main.cnn"], "load() argument 'texts' must be a mapping of paths to text, not list"),
    ({3: "relu"}, "load() argument 'texts' must be str or os.PathLike, not int"),
    ({"main.cnn": b"relu"}, "load() argument 'texts['main.cnn']' must be the spec's text as str, not bytes"),
])
def test_texts_of_the_wrong_type_are_refused_at_the_call(tmp_path, texts, message):
    write(tmp_path, {"main.cnn": MAIN})
    with pytest.raises(TypeError) as caught:
        cnnspec.load(tmp_path / "main.cnn", texts=texts)
    assert str(caught.value).startswith(message)


def test_an_import_s_parse_is_reused_only_for_the_same_text_under_the_same_name(tmp_path):
    folder = write(tmp_path / "a", {"main.cnn": MAIN, "parts/unit.cnn": UNIT})
    reference = write(tmp_path / "b", {"main.cnn": MAIN, "parts/unit.cnn": UNIT_EDITED})
    before = figures(cnnspec.load(folder / "main.cnn"))
    (folder / "parts" / "unit.cnn").write_text(UNIT_EDITED)  # changed on disk between two loads
    assert figures(cnnspec.load(folder / "main.cnn")) == figures(cnnspec.load(reference / "main.cnn")) != before
    # the same text imported under two names: each diagnostic names its own file
    broken = "block unit(c) {\n  conv c 3x3 strde=1\n}\n"
    for name in ("one", "two"):
        write(tmp_path / name, {"main.cnn": f'input x: 3x8x8\nimport "{name}/unit.cnn"\nunit(4)\n',
                                f"{name}/unit.cnn": broken})
    for name in ("one", "two"):
        _, diagnostics, _ = check(tmp_path / name / "main.cnn")
        assert [(d.code, Path(d.span.file).as_posix()[-len(f"{name}/{name}/unit.cnn"):]) for d in diagnostics] == [
            ("E102", f"{name}/{name}/unit.cnn")]


def test_a_path_the_system_cannot_resolve_is_still_a_diagnostic_with_texts(tmp_path):
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load("a\x00b.cnn", texts={tmp_path / "main.cnn": MAIN})
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.code == "E132" and diagnostic.message.startswith("cannot read `")
