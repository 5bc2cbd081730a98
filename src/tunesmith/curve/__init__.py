"""`tunesmith data curve`: would more labelled data help? command.py (the points, trained
by `tunesmith train`'s phases), fit.py (the line, the power law, the sentence), page.py
(curve.html)."""
