"""The stage implementations behind ``seas-runtime <stage>``; each takes a config and returns a result."""
