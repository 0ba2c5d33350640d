"""Turn trained and pruned torch models into deployable artifacts, and build the device bundle."""
