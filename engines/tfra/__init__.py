"""The "tfra" peer engine: TensorFlow Recommenders-Addons in its own venv, out of process."""
