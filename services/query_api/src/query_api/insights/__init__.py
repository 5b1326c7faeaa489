"""Insights: charts of a shop's returns over a time range (`GET /api/v1/insights`).

- `views`: what the route answers (pydantic models, the OpenAPI document's shapes);
- `aggregate`: pure functions from plain rows (`ReturnRow`, `HistoryRow`) to those views;
- `reader`: the MongoDB reads that produce the rows (projected fields only).
"""
