from cnnspec.cli import console_entry

console_entry()
