"""a3d_cli.models."""
