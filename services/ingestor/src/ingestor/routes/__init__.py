"""The ingestor's HTTP routes, one module per resource; `ingestor.app.create_app` wires them."""
