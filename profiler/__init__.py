"""Measurement: builds the real model a training setup describes and counts what it really uses.

Never imported by planning unless a profile is given; torch is imported inside the functions.
"""
