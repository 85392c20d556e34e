"""doit task definitions, one module per area; dodo.py only re-exports them."""
