"""Renders a plan (its JSON) into the HTML report and the exported config folder."""
