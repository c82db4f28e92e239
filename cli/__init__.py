"""The kerastl command line (installed as ``kerastl_cli``)."""
