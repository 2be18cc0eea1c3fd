from cnnspec.console import console_entry

console_entry()
