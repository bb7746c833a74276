"""a3d_cli.weights."""
