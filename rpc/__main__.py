"""``python -m rpc``: the ``h2rpc`` command-line client."""

from .cli import console_main

console_main()
