"""Bytes and where they live: readers over ranges of objects, and listings of stores."""
