"""``vlmbench view``: one self-contained HTML page to browse a run, sample by sample.

:mod:`vlmbench.view.data` gathers what the page shows from a run folder (finished or partial),
with thumbnails made from the dataset images when they can be loaded; :mod:`vlmbench.view.page`
renders the page. Everything a run holds is treated as hostile text: it reaches the page only as
escaped JSON that the page's script places with ``textContent``, under a Content-Security-Policy
that runs nothing but that one script.
"""
