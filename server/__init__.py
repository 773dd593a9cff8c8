"""Triad: three-way telehealth consult rooms with a live shared treatment plan."""
