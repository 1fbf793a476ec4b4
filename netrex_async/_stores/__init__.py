"""Token stores: where a grant's current token lives between refreshes and processes."""
