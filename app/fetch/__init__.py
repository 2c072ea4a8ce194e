"""Fetching one URL with httpx (redirects by hand, a byte cap, one deadline), classifying the
outcome, and extracting fields with parsel. Knows nothing of jobs."""
