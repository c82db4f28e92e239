"""python -m kerastl_cli: the kerastl command."""

from kerastl_cli.main import main

main()
