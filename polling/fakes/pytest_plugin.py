"""pytest fixtures that run the fake servers (filled in with the fakes)."""
