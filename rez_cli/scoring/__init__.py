"""Forward scoring: what became of journaled decisions, judged on the candles that came after them."""
