"""Build the static leaderboard site from a data folder: ``build_site`` (the entry point the CLI calls).

Input: ``DATA_DIR/<entry id>/metadata.json`` and ``results.json``, one folder per accepted model and
revision (as ``vlmbench leaderboard add`` writes them); the table and plots are declared in
``leaderboard.yaml``. The work is split by seam:

* ``config`` (with ``config_schema`` and ``leaderboard.schema.json``): the YAML configuration;
* ``entries`` (with ``schemas``): reading and validating stored entries;
* ``cells`` and ``board``: values, ranking, ties and columns;
* ``formatting``: number formats;
* ``render_md``, ``render_csv``, ``render_json``, ``render_html``, ``render_plots`` (with ``plots``): the outputs;
* ``site``: writing everything.
"""

from __future__ import annotations

from vlmbench_leaderboard.site import build_site

__all__ = ["build_site"]
