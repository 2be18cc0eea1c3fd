"""Project configuration: the `[tool.cnnspec]` table of the nearest `pyproject.toml`.

    [tool.cnnspec]
    ignore = ["W112"]            # lint rules switched off
    strict = true                # `cnnspec check` fails on warnings too

    [tool.cnnspec.severity]
    W105 = "error"               # a warning that fails the check; "warning" or "off" also work

    [tool.cnnspec.limits]        # refuse specs above these (defaults: cnnspec.analysis.limits.Limits)
    max-layers = 50_000          # layers after expansion, counted ahead of it (20,000; E124)
    max-tokens = 200_000         # tokens of one file, counted before it is parsed (100,000; E012)
    max-params = "2G"            # also max-activation (elements), max-repeat, max-call-depth

As ruff does, the table is looked up from each spec's folder upwards: the first `pyproject.toml`
holding a `[tool.cnnspec]` table applies. Errors cannot be switched off or demoted: an error
means the spec cannot be built.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from cnnspec.analysis.limits import Limits
from cnnspec.codes import CODES, Code
from cnnspec.diagnostics import Diagnostic, SpecError
from cnnspec.frontend.loader import read_source
from cnnspec.wording import closest

SEVERITIES = ("error", "warning", "off")
#: `[tool.cnnspec.limits]` keys and the `Limits` fields they set
LIMIT_KEYS = {f.name.replace("_", "-"): f.name for f in dataclasses.fields(Limits)}
TOP_KEYS = ("ignore", "strict", "severity", "limits")


class ConfigError(ValueError):
    """A `[tool.cnnspec]` table cnnspec cannot use; the message names the file and the key."""


@dataclass(frozen=True)
class Config:
    ignore: frozenset[Code] = frozenset()
    severity: dict[Code, str] = field(default_factory=dict)
    limits: Limits = Limits()
    strict: bool = False
    #: the pyproject.toml it was read from
    path: Path | None = None

    def level(self, code: Code | str) -> str:
        """What a diagnostic of this code (a member, or its text) becomes: its severity, or "off"."""
        if code in self.ignore:
            return "off"
        return self.severity.get(code, Code(code).severity)

    def apply(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        kept = []
        for d in diagnostics:
            if d.severity == "error":
                kept.append(d)
                continue
            level = self.level(d.code)
            if level == "off":
                continue
            kept.append(d if level == d.severity else d.model_copy(update={"severity": level}))
        return kept


def find_config(start: str | Path) -> Path | None:
    """The first `pyproject.toml` with a `[tool.cnnspec]` table, from `start` (a file or a folder) upwards."""
    found = _nearest_table(start)
    return found[0] if found is not None else None


def _nearest_table(start: str | Path) -> tuple[Path, dict] | None:
    """The nearest pyproject.toml holding a `[tool.cnnspec]` table, with that table, each file read once."""
    folder = Path(start).resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            tool = _read(path, only_if=may_hold_the_table).get("tool", {})
            if "cnnspec" in tool:
                return path, tool["cnnspec"]
    return None


#: a bare or quoted TOML key (escapes in a quoted key are not followed), and blanks around a dot
_KEY = r"""[ \t]*["']?{}["']?[ \t]*"""
_TOOL = _KEY.format("tool")
#: `[tool.cnnspec`, `[[tool.cnnspec` or a key `tool.cnnspec` at the start of a line (a header
#: left unclosed too, for the parse to refuse it)
_TOOL_CNNSPEC = re.compile(rf"""^[ \t]*\[?\[?{_TOOL}\.[ \t]*["']?cnnspec""", re.M)
#: a `[tool]` table or a `tool = {...}` key, in which a key `cnnspec` may stand apart
_TOOL_ALONE = re.compile(rf"^[ \t]*(?:\[{_TOOL}\]|{_TOOL}=)", re.M)
_CNNSPEC_KEY = re.compile(r"""cnnspec["']?[ \t]*[.=]""")


def may_hold_the_table(text: str) -> bool:
    """Whether a TOML text may hold a `tool.cnnspec` table: a header or a key names `tool` then
    `cnnspec`, or a `[tool]` table or a `tool = {...}` key is there beside a key `cnnspec`. False
    for what most projects' pyproject.toml holds, tables of other tools and `cnnspec` as a
    dependency, so it is left unparsed (and `tomllib` unimported); true wherever TOML could make
    the table (short of spelling its name in escapes)."""
    return bool(_TOOL_CNNSPEC.search(text) or (_TOOL_ALONE.search(text) and _CNNSPEC_KEY.search(text)))


def _read(path: Path, only_if=None) -> dict:
    """The TOML file's tables; with `only_if`, nothing from a file whose text it says no to."""
    try:
        # as a spec is read: a regular file of bounded size, never a FIFO that blocks or a device
        text = read_source(path, str(path))
    except SpecError as error:
        raise ConfigError(f"{path}: cannot read it ({error.diagnostics[0].message})") from None
    if only_if is not None and not only_if(text):
        return {}
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None


def load_config(path: str | Path) -> Config:
    """The `[tool.cnnspec]` table of a pyproject.toml, validated; an empty Config without one."""
    path = Path(path)
    return _validated(path, _read(path).get("tool", {}).get("cnnspec", {}))


def _validated(path: Path, table) -> Config:
    """A `[tool.cnnspec]` table read from `path` as a Config, or `ConfigError` naming the key."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.cnnspec] is a table")

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{path}: [tool.cnnspec] {message}")

    def unknown(key: str, known, where: str) -> ConfigError:
        near = closest(key, list(known))
        return fail(f"unknown key `{key}`{where}" + (f"; did you mean `{near}`?" if near else ""))

    for key in table:
        if key not in TOP_KEYS:
            raise unknown(key, TOP_KEYS, "")

    def code(value, where: str) -> Code:
        found = Code.lookup(value) if isinstance(value, str) else None
        if found is None:
            near = closest(str(value).upper(), list(CODES))
            raise fail(f"{where}: `{value}` is not a diagnostic code" + (f"; did you mean `{near}`?" if near else ""))
        if found.severity == "error":
            raise fail(f"{where}: {found} is an error; errors cannot be switched off or demoted, "
                       "since the spec cannot be built")
        return found

    def entry(key: str, kind: type, what: str):
        """The table's `key` (its default when absent), refused unless it is a `kind`."""
        value = table.get(key, kind())
        if not isinstance(value, kind):
            raise fail(f"`{key}` is {what}")
        return value

    ignore = entry("ignore", list, "a list of codes, such as [\"W112\"]")
    ignored = frozenset(code(value, "ignore") for value in ignore)

    severity = entry("severity", dict, "a table, such as `[tool.cnnspec.severity]` with `W105 = \"error\"`")
    levels = {}
    for key, level in severity.items():
        if level not in SEVERITIES:
            raise fail(f"severity of {key}: `{level}` is not one of " + ", ".join(f'"{s}"' for s in SEVERITIES))
        levels[code(key, "severity")] = level

    strict = entry("strict", bool, "true or false")
    limits = entry("limits", dict, "a table, such as `[tool.cnnspec.limits]` with `max-params = \"2G\"`")
    values = {}
    for key, value in limits.items():
        if key not in LIMIT_KEYS:
            raise unknown(key, LIMIT_KEYS, " in [tool.cnnspec.limits]")
        values[LIMIT_KEYS[key]] = _count(value, lambda message, key=key: fail(f"limits.{key}: {message}"))
    return Config(ignore=ignored, severity=levels, limits=Limits(**values), strict=strict, path=path)


def _count(value, fail) -> int:
    """A positive whole number, as an integer or a quantity such as "2G"."""
    from cnnspec.frontend.build import parse_quantity

    if isinstance(value, str):
        try:
            value = parse_quantity(value)
        except (ValueError, IndexError):
            raise fail(f"`{value}` is not a count such as 200000 or \"2G\"") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise fail(f"`{value}` is not a positive whole number")
    return int(value)


def config_for(spec: str | Path) -> Config:
    """The configuration that applies to a spec file (`zoo:` names: the current folder's)."""
    start = Path.cwd() if str(spec).startswith("zoo:") else Path(spec)
    found = _nearest_table(start)
    return _validated(*found) if found is not None else Config()
