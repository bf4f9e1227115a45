"""The leaf every layer may import: the one error root (and nothing that imports upward)."""
