"""What the service did, for people: the status page on the UI's port (`/status`), its JSON twin
(`/status.json`), and what feeds them.

  freshness.py  each mart against marts.md "Freshness and consistency": facts from SQLMesh's
                state and the warehouse, a verdict (fresh / pending / behind) from the facts
  store.py      the state-database tables next to run history: run details, assessments
  data.py       everything the page shows, as plain data (the JSON endpoint is this, serialized)
  charts.py     inline SVG charts, drawn on the server
  web.py        the ASGI routes mounted in front of SQLMesh's UI, and the landing-page link
"""
