"""a3d_cli.io."""
