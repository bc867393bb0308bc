"""FastAPI app: directory CRUD, call control, push channel. Starts workflows and sends
updates; never sleeps or decides call logic."""
