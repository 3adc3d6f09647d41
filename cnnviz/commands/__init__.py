"""CLI sub-commands. Each module defines ``register(subparsers)``; see cnnviz.cli."""
