"""The swap explorer behind ``explore.py``: a page where a person picks the content video and the motion
video from a grid of test videos and watches the swap play.

:mod:`utils.explorer.session` holds the model and the cached codes of the grid videos and answers one
request with frames; :mod:`utils.explorer.server` serves the page (``page.html``, plain HTML and JavaScript
that work offline) and a small JSON API on 127.0.0.1.
"""
