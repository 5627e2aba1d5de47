"""Orchestration above the stages: training a configured model into a run folder."""
