"""Action-recognition engines: MMAction2-compatible models, export and inference backends."""
