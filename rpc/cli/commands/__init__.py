"""One module per ``h2rpc`` command, each with ``register(subparsers)``.

``register`` adds the command's parser and sets ``run``: a function of the
parsed arguments returning the exit status (or a coroutine returning it).
"""
