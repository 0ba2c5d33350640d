"""The lab's experiments over content-addressed run folders."""
