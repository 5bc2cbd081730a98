"""`tunesmith annotate`: a local web page to label rows and review suspected label errors.

dataset.py reads DATA (texts, image table or image folder); suspects.py reads a quality.json;
store.py keeps every decision in SQLite; export.py turns decisions into final labels and writes
the labelled table; agreement.py measures agreement between annotators; session.py ties them
together; app.py serves static/ and a JSON API; command.py is the command line.
"""
