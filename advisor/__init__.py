"""advise: tells a team whether and how to adapt an LLM to their task, and hands them everything to do it."""

__version__ = "0.1.0"
