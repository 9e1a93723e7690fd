"""The `minerd` command and its subcommands: parse arguments, configure logging, call in.

main (the console script and `python -m minerd`) lives in minerd.cli.entry; each command's
module is imported only when that command runs. This is the only package that imports
minerd.daemon (for `run` and `demo`); nothing else imports this one.
"""

from minerd.cli.entry import main

__all__ = ["main"]
