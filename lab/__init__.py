"""hashtable-lab's harness: scenarios, parity and timing runners, reports, the CI gate and
the `hashlab` command line."""
