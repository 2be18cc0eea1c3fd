"""`cnnspec lsp`: a Language Server Protocol server over stdio, on pygls.

The server holds no logic of its own about specs: it checks with `cnnspec.network.check`, as
`cnnspec check` does, and turns the diagnostics, the summary's rows and the formatter's output
into LSP messages. pygls is an optional dependency (`pip install "cnnspec[lsp]"`); nothing
outside this package imports it.
"""

from __future__ import annotations

import sys

INSTALL_HINT = 'error: the language server needs pygls: pip install "cnnspec[lsp]"'


def serve() -> None:
    """Run the server on stdin and stdout until the client exits; exit 2 without pygls."""
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(2)
    from cnnspec.lsp.server import build_server

    build_server().start_io()
