"""``rez arena``: contestants (models, prompts, profiles and the built-in baselines) over one tape.

Each contestant is walked by the backtest engine over the same moments with its own answer cache, so
a rerun asks no model anything and ranks them exactly as before (``run``); the leaderboard's
statistics, bootstrap intervals and p-values included, are pure functions of the walks (``stats``,
``board``).
"""
