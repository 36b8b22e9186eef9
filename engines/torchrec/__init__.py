"""The "torchrec" peer engine: TorchRec's managed-collision module over FBGEMM's embedding
table, in its own venv, out of process."""
