"""``rez doctor``: the checks, and the tiny requests that find out what a model endpoint accepts."""
