"""The `cnnspec` command's entry point (the console script and `python -m cnnspec`).

It loads nothing but the standard library's `gc`, `os` and `sys` before it has decided how the
process runs: the cyclic collector is paused before click and Pydantic are imported (their
imports alone made about 50 collector passes), and Pydantic is told there are no plugins to look for. Only
then does it import the command line (`cnnspec.cli`) and run it.
"""

from __future__ import annotations

import gc
import os
import sys

#: commands that keep the cyclic garbage collector: the language server lives long, and those
#: that build models hold arrays a reference cycle could keep alive
KEEPS_THE_COLLECTOR = frozenset({"lsp", "export", "run", "verify", "taps"})

#: the module Pydantic finds its plugins with, and the settings with which it finds none
PLUGIN_LOADER = "pydantic.plugin._loader"
ALL_PLUGINS_DISABLED = ("__all__", "1", "true")


def _without_plugin_discovery() -> None:
    """Pydantic's plugin loader, as it behaves with every plugin disabled: it finds none.

    Pydantic imports `pydantic.plugin._loader` when it builds its first validator, and that module
    imports `importlib.metadata` (and with it `email`, `csv` and `zipfile`) to read entry points,
    about 7 ms of a 0.2 s check, even where `PYDANTIC_DISABLE_PLUGINS=__all__` (or `1`, or `true`) means
    no entry point is read. So when all plugins are disabled, the loader is a module whose `get_plugins`
    returns none, as the real one then does (`tests/test_cli.py` holds the two to the same names).
    """
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in ALL_PLUGINS_DISABLED or PLUGIN_LOADER in sys.modules:
        return
    import types

    loader = types.ModuleType(PLUGIN_LOADER, "Pydantic's plugin loader with every plugin disabled")
    loader.get_plugins = lambda: ()
    sys.modules[PLUGIN_LOADER] = loader


def console_entry() -> None:
    """The command: `cnnspec.cli.main`, then a quick exit.

    Once a command has finished, the interpreter's teardown would free every module and every
    node of the checked network one object at a time, a noticeable share of a short command.
    So after the `atexit` handlers have run and the output is flushed, the process ends at
    once, as Instagram's services do. Under a tracer or profiler (coverage, cProfile) it exits the
    usual way, so they can write their reports.
    """
    # Pydantic looks for plugins among every installed distribution's entry points the first time
    # it builds a validator (a tenth of a check's time here); a command has none to run. Set the
    # variable to an empty string to have Pydantic look for them after all.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _without_plugin_discovery()
    if sys.argv[1:2] and sys.argv[1] not in KEEPS_THE_COLLECTOR:
        # one short process that ends at once below: the cyclic collector would only walk the
        # imported modules' and the checked network's objects, alive to the end, pass after pass
        # (a sixth of a 10,000-layer check's time, a fiftieth of ResNet-50's)
        gc.disable()
    from cnnspec.cli import main

    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code
    if sys.gettrace() is not None or sys.getprofile() is not None:
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        # as the interpreter does: a message is printed and the status is 1
        print(code, file=sys.stderr)
        code = 1
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            # a closed pipe: the reader is gone, and the status is all that is left to give
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    console_entry()
