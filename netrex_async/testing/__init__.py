"""An embedded fake of the Netrex provider for tests (work in progress)."""

__all__: list[str] = []
