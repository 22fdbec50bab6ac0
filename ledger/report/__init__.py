"""Reports on the books: period statements, entry exports and the transparency site."""
