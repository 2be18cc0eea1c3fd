"""Text to surface IR: `parse_file` reads and parses one file, with located diagnostics."""

from cnnspec.frontend.parser import parse_text

__all__ = ["parse_text"]
