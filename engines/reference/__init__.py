"""Reference engines: numpy (the executable spec) and TensorFlow."""
