"""Command groups of the `drehscheibe` CLI, one module per group."""
