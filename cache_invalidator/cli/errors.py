"""Errors the CLI commands report as problems, each naming what to check."""


class CosmosUnavailable(RuntimeError):
    """Cosmos DB could not be read; the message names the setting to check."""
