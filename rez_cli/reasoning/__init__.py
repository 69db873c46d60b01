"""Reasoning: the ReAct loop over an LLM, the rules baseline, and the manager that bounds them."""
