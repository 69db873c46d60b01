"""One decision cycle and its runs: which model, the context, the orchestrator, and replays."""
