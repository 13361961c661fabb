# Shortcuts for tasks.py, which needs only Python.
.PHONY: setup video test
setup:
	python3 tasks.py setup
video:
	python3 tasks.py video
test:
	python3 tasks.py test
