"""``rez audit``: how far a stored backtest's result can be trusted (issue 11 §3).

- ``cutoffs``: the training cutoff of a model (``[llm.cutoffs]``, then approximate defaults);
- ``splits``: the metrics before and after that cutoff, and in bull, bear and sideways windows;
- ``altered``: a sample of the cycles replayed on candles renamed, rescaled and moved in time;
- ``probe``: the memorisation probe (continue a real window's closes, scored against random walks);
- ``grade``: the A–D grade and the reasons that set it;
- ``run``: all of it for one backtest of the journal, stored back with it.
"""
