"""The operators' command line: `python -m cache_invalidator check|replay`.

Nothing here is imported by function_app.py: the Functions host never loads
azure-cosmos, azure-identity or tqdm, which only the CLI needs
(requirements-cli.txt).
"""
