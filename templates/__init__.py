"""Jinja2 templates for the exported training configs and the HTML report, one folder per output."""
