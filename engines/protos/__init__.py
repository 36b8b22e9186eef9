"""generated; do not edit; run python proto/generate.py"""
